import os
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The suite compiles far more than it runs (a tiny config's iteration compiles in 10 s and runs in
# milliseconds), so its programs are compiled cheaply: XLA's older elemental emitters instead of its
# fusion emitters and no LLVM optimisation. A tiny ia2c iteration compiles in 2.2 s instead of 10 s
# and the default suite's CPU time falls by 38 % (docs/testing.md); the semantics are XLA's, so
# every check means what it did. Tests marked `users_compiler` (below) run as users compile: long
# learning checks, and bitwise equality of two different programs, which these settings do not keep.
# Flags, not JAX options, so that every subprocess a test starts (CLI, mpirun, cluster workers)
# compiles the same way. NETMARL_TEST_FULL_OPT=1 tests with the compiler settings users run with;
# NETMARL_TEST_CHEAP_XLA names the cheap flags to the xdist workers and to pytest_pyfunc_call.
TEST_XLA_FLAGS = ("--xla_cpu_use_fusion_emitters=false --xla_backend_optimization_level=0 "
                  "--xla_llvm_disable_expensive_passes=true")
# First: XLA stops reading XLA_FLAGS at a word without dashes such as `intra_op_parallelism_threads=1`
# (the flags after it are silently ignored).
if os.environ.get("NETMARL_TEST_FULL_OPT") != "1" and TEST_XLA_FLAGS not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] = f"{TEST_XLA_FLAGS} {os.environ['XLA_FLAGS']}"
    os.environ["NETMARL_TEST_CHEAP_XLA"] = TEST_XLA_FLAGS
# One persistent compilation cache for the session, its xdist workers and the subprocesses the CLI
# and MPI tests start: tests that build the same shapes compile once (keyed by the program, so a
# code change never reuses a stale executable).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      str(Path(__file__).resolve().parent.parent / ".pytest_cache" / "jax"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

# A test of the default suite (not marked `slow`) may take at most this long, set-up included; a
# longer one is named at the end and fails the session (issue 20). NETMARL_TEST_BUDGET=warn only
# names it (e.g. on a machine busy with other work); NETMARL_TEST_LIMIT_S changes the limit.
DEFAULT_SUITE_LIMIT_S = float(os.environ.get("NETMARL_TEST_LIMIT_S", "60"))
_too_slow: dict[str, float] = {}


def pytest_runtest_logreport(report):
    if report.when in ("setup", "call") and "slow" not in report.keywords:
        _too_slow[report.nodeid] = _too_slow.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session, exitstatus):
    over = {test: s for test, s in _too_slow.items() if s > DEFAULT_SUITE_LIMIT_S}
    if over and not hasattr(session.config, "workerinput"):  # judged once, by the xdist controller
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        for test, seconds in sorted(over.items(), key=lambda kv: -kv[1]):
            reporter.write_line(f"TOO SLOW for the default suite ({seconds:.0f} s > "
                                f"{DEFAULT_SUITE_LIMIT_S:.0f} s): {test}", red=True)
        if os.environ.get("NETMARL_TEST_BUDGET", "fail") != "warn":
            session.exitstatus = 1


def pytest_configure(config):
    config.addinivalue_line("markers", "users_compiler: runs in a subprocess compiled with users' XLA "
                            "settings, not the suite's cheap ones (long-running learning checks, "
                            "bitwise equality of two programs)")


def pytest_pyfunc_call(pyfuncitem):
    """A `users_compiler` test, under the suite's cheap compiler settings, runs itself again in a
    pytest subprocess with users' settings (NETMARL_TEST_FULL_OPT=1, XLA_FLAGS without the cheap
    flags) and passes when that run passes."""
    cheap = os.environ.get("NETMARL_TEST_CHEAP_XLA")
    if not cheap or pyfuncitem.get_closest_marker("users_compiler") is None:
        return None
    import subprocess
    import sys
    env = {**os.environ, "NETMARL_TEST_FULL_OPT": "1",
           "XLA_FLAGS": os.environ["XLA_FLAGS"].replace(cheap, "").strip()}
    env.pop("NETMARL_TEST_CHEAP_XLA")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                           pyfuncitem.nodeid], env=env, capture_output=True, text=True,
                          cwd=str(pyfuncitem.config.rootpath))
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout[-3000:]
    return True
