"""The lecture's decomposition results on one-step matrix games (seeds/marl_book_lecture_deep_marl_part1)."""
import jax
import numpy as np

from netmarl.results.qtables import q_tables
from tests.helpers import joint_q_table, matrix_config, train_steps

LINEAR = np.array([[1, 5], [5, 9]])
MONOTONIC = np.array([[0, 0], [0, 10]])
CLIMBING = np.array([[11, -30, 0], [-30, 7, 0], [0, 6, 5]])


def test_vdn_fits_the_linear_game_exactly():
    table = joint_q_table(*train_steps(matrix_config("linear", "vdn")))
    np.testing.assert_allclose(table, LINEAR, atol=0.2)


def test_qmix_recovers_monotonic_game_where_vdn_cannot():
    qmix = joint_q_table(*train_steps(matrix_config("monotonic", "qmix")))
    assert abs(qmix[1, 1] - 10) < 0.5, qmix
    assert np.unravel_index(qmix.argmax(), qmix.shape) == (1, 1)
    vdn = joint_q_table(*train_steps(matrix_config("monotonic", "vdn")))
    # least squares by a sum under uniform data gives [[-2.5, 2.5], [2.5, 7.5]]: error 2.5 everywhere
    assert np.abs(vdn - MONOTONIC).max() > 2.0, vdn
    np.testing.assert_allclose(vdn, [[-2.5, 2.5], [2.5, 7.5]], atol=0.3)


def test_vdn_misses_the_climbing_optimum():
    table = joint_q_table(*train_steps(matrix_config("climbing", "vdn")))
    greedy = np.unravel_index(table.argmax(), table.shape)
    assert greedy != (0, 0), table  # the optimum (A, A) = 11 is surrounded by -30 penalties
    assert greedy == (2, 2), table  # uniform-data VDN: row means favour C


def test_qtran_recovers_the_climbing_optimum_where_vdn_and_qmix_cannot():
    """QTRAN-base's Q_jt fits the climbing payoff and the utilities' greedy joint action is its optimum
    (A, A) = 11 (10/10 seeds in docs/results/decomposition_games.md, whose setting this is)."""
    config = matrix_config("climbing", "qtran", steps=2000, shared_params=True, batch_size=64)
    config.algo.mixer.embed = 64
    trainer, carry = train_steps(config)
    tables = q_tables(trainer.learner, carry.learner, trainer.env, jax.random.key(0))
    np.testing.assert_allclose(tables.q_tot, CLIMBING, atol=0.5)
    assert tuple(np.asarray(tables.greedy)) == (0, 0), tables
