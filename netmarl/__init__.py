"""netmarl: cooperative multi-agent RL with value decomposition, central or networked."""
__version__ = "0.1.0"
