"""GX's unused scipy.stats import is deferred (custpipe.quality._lazy_imports)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from custpipe_tests.quality.helpers import REPO_ROOT


def _python(code: str) -> str:
    """Run `code` in a fresh interpreter (this one has imported whatever other tests did)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={"GX_ANALYTICS_ENABLED": "false", "PATH": ""},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_importing_gx_and_validating_leave_scipy_stats_unloaded(tmp_path):
    out = _python(f"""
        import sys
        from pathlib import Path
        from custpipe.quality._lazy_imports import is_lazy
        from custpipe.quality.gx_runner import validate_frame
        from custpipe_tests.quality.helpers import EXPECTATIONS_DIR, make_staged_frame
        import great_expectations
        outcome = validate_frame(make_staged_frame(20), "staged_customers_erp",
            expectations_dir=EXPECTATIONS_DIR, gx_dir=Path({str(tmp_path / "gx")!r}))
        print(outcome.success, is_lazy(sys.modules["scipy.stats"]))
    """)
    assert out == "True True"


def test_a_deferred_module_loads_on_first_use():
    out = _python("""
        import sys
        import custpipe.quality
        from custpipe.quality._lazy_imports import defer, is_lazy
        from scipy import stats
        lazy = is_lazy(stats)
        entropy = stats.entropy([0.5, 0.5], base=2)
        print(lazy, is_lazy(stats), entropy, defer("scipy.stats"))
    """)
    assert out == "True False 1.0 False"


def test_nothing_is_deferred_when_imported_already_or_not_installed():
    out = _python("""
        import sys
        import scipy.stats
        from custpipe.quality._lazy_imports import defer, is_lazy
        print(defer("scipy.stats"), is_lazy(sys.modules["scipy.stats"]),
              defer("no_such_package.stats"), defer("no_such_module"))
    """)
    assert out == "False False False False"
