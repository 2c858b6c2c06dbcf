"""The Slack example in docs/ runs as documented."""

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "slack_hello.py"


def test_slack_example_answers_and_posts_a_notice():
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert (
        "reply: {'response_type': 'in_channel', 'text': 'Hello, <@U1>!'}"
        in result.stdout
    )
    assert "notices: [{'channel': 'C0NOTICES', 'text': 'ada said hello'}]" in (
        result.stdout
    )
