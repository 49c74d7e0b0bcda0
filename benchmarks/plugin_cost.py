"""What the plugin costs a pytest run that audits nothing: CPU time and peak memory, plugin on against off.

    python benchmarks/plugin_cost.py [--rounds 7] [--tests 1]

A project with pytest-kernelbias installed loads the plugin in every pytest run. Each round runs the
same one-test project twice, side by side in fresh processes: once as installed, once with
`-p no:kernelbias`, in alternating order. Per run it reads the child's user+system CPU seconds and
its peak resident memory (getrusage of the waited-for child, measured in a fresh wrapper process so
the maxima of earlier runs do not carry over). It prints each round and the median ratios; the goal
(issue: a plugin that costs nothing when unused) is <= 1.2x on both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# Runs pytest as a child and reports that child's own rusage: a fresh wrapper per run, so RUSAGE_CHILDREN's
# peak memory is this run's, not the largest of all runs so far.
WRAPPER = """
import json, resource, subprocess, sys
subprocess.run(sys.argv[1:], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"cpu_s": r.ru_utime + r.ru_stime, "peak_mib": r.ru_maxrss / 1024}))
"""


def _project(folder: Path, tests: int) -> None:
    body = "\n\n".join(f"def test_{i}():\n    assert {i} + 1 == {i + 1}" for i in range(tests))
    (folder / "test_project.py").write_text(body + "\n")


def _run(folder: Path, plugin: bool) -> dict:
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)]
    if not plugin:
        args += ["-p", "no:kernelbias"]
    out = subprocess.run([sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True, check=True,
                         cwd=folder)
    return json.loads(out.stdout)


def _check_plugin_loads(folder: Path) -> None:
    # Without this a broken entry point would measure "no plugin" against "no plugin" and pass.
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(folder)],
                         capture_output=True, text=True, cwd=folder).stdout
    if "kernel-audit defaults" not in out:
        sys.exit("the kernelbias plugin did not load: is the package installed (pip install -e .)?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tests", type=int, default=1, help="tests in the project (default 1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _project(folder, args.tests)
        _check_plugin_loads(folder)
        cpu, mem = [], []
        print("round  cpu on/off (s)   peak on/off (MiB)")
        for i in range(args.rounds):
            order = (True, False) if i % 2 == 0 else (False, True)
            runs = {plugin: _run(folder, plugin) for plugin in order}
            cpu.append(runs[True]["cpu_s"] / runs[False]["cpu_s"])
            mem.append(runs[True]["peak_mib"] / runs[False]["peak_mib"])
            print(f"{i + 1:5d}  {runs[True]['cpu_s']:.2f} / {runs[False]['cpu_s']:.2f}      "
                  f"{runs[True]['peak_mib']:.0f} / {runs[False]['peak_mib']:.0f}")
    print(f"median ratio, plugin on / off: CPU {statistics.median(cpu):.2f}x, peak memory "
          f"{statistics.median(mem):.2f}x (goal <= 1.2x each)")


if __name__ == "__main__":
    main()
