"""CI runs the test command the README shows a new user, and nothing else."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    shown = re.search(r"The tests:\n\n```bash\n(.+?)\n```", readme)
    assert shown, "README.md: the tests' command block after 'The tests:'"
    ci_commands = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if "pytest" in line]
    assert ci_commands == [shown.group(1)]
