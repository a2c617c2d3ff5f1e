"""``manage.py pgqrs`` as a real process: exit codes and stderr through ``run_from_argv``, the
confirmation prompt and the progress bar on a terminal (a pseudo-terminal here)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pgqrs_django import PgqrsAdmin, conf
from pgqrs_django.models import Message, Queue
from tests.cli_support import ROOT, subprocess_cli

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.pgbouncer]


def test_exit_codes_and_one_line_errors_from_a_real_process(
    subprocess_env: dict[str, str],
) -> None:
    ok = subprocess_cli("queue", "create", "proc-q", "--format", "json", env=subprocess_env)
    assert ok.returncode == 0 and ok.stderr == ""
    assert Queue.objects.filter(name="proc-q").exists()
    bad = subprocess_cli("queue", "create", "bad name", env=subprocess_env)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.splitlines() == [
        "pgqrs: error: queue create: argument NAME: invalid queue name 'bad name': use 1-128 "
        "characters from letters, digits, '_', '-' and '.' (see --help)"
    ]
    missing = subprocess_cli("message", "show", "proc-q", "12345", env=subprocess_env)
    assert missing.returncode == 2
    assert missing.stderr == "pgqrs: error: message 12345 not found in queue 'proc-q'\n"
    usage = subprocess_cli(env=subprocess_env)
    assert usage.returncode == 2 and len(usage.stderr.splitlines()) == 1
    helped = subprocess_cli("message", "send", "--help", env=subprocess_env)
    assert helped.returncode == 0 and "--dedupe-key KEY" in helped.stdout


def test_send_file_from_stdin_and_log_level_in_a_real_process(
    subprocess_env: dict[str, str],
) -> None:
    PgqrsAdmin().create_queue("proc-q")
    lines = "".join(f'{{"n": {i}}}\n' for i in range(2500))
    proc = subprocess_cli(
        "message",
        "send",
        "proc-q",
        "--file",
        "-",
        "--log-level",
        "debug",
        env=subprocess_env,
        stdin=lines,
    )
    assert proc.returncode == 0, proc.stderr
    assert Message.objects.count() == 2500
    # Not a terminal: no progress bar; the debug log goes to stderr.
    assert "\r" not in proc.stderr and "enqueued 1000 messages on 'proc-q'" in proc.stderr


def run_with_terminal(
    args: list[str], env: dict[str, str], *, terminal: str, answer: str = ""
) -> tuple[int, str, str]:
    """Run ``manage.py pgqrs args`` with ``terminal`` ("stdin" or "stderr") attached to a
    pseudo-terminal; returns (exit code, stdout, what the terminal showed)."""
    master, slave = pty.openpty()
    streams = {"stdin": subprocess.PIPE, "stderr": subprocess.PIPE}
    streams[terminal] = slave
    proc = subprocess.Popen(
        [sys.executable, "-m", "django", "pgqrs", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        **streams,  # type: ignore[arg-type]
    )
    os.close(slave)
    shown: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                return
            if not chunk:
                return
            shown.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if answer:
        os.write(master, answer.encode())
    stdout, stderr = proc.communicate(timeout=120)  # closes the pipes
    reader.join(timeout=10)
    os.close(master)
    shown.append((stderr or "").encode())
    return proc.returncode, stdout, b"".join(shown).decode(errors="replace")


def test_uninstall_asks_on_a_terminal(subprocess_env: dict[str, str]) -> None:
    admin = PgqrsAdmin()
    admin.create_queue("keep-me")
    code, out, shown = run_with_terminal(
        ["uninstall"], subprocess_env, terminal="stdin", answer="no\n"
    )
    assert code == 1 and "Type 'yes' to continue" in shown
    assert "pgqrs: error: uninstall cancelled: nothing changed" in shown
    assert admin.verify().ok and Queue.objects.filter(name="keep-me").exists()
    try:
        code, out, shown = run_with_terminal(
            ["uninstall"], subprocess_env, terminal="stdin", answer="yes\n"
        )
        assert code == 0, shown
        assert out == f"pgqrs tables dropped from database {conf.database()!r}\n"
        assert "missing table pgqrs_queue" in admin.verify().problems
    finally:
        admin.install()


def test_send_file_draws_a_progress_bar_on_a_terminal(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    PgqrsAdmin().create_queue("proc-q")
    path = tmp_path / "payloads.jsonl"
    path.write_text("".join(f'{{"n": {i}}}\n' for i in range(3000)))
    code, out, shown = run_with_terminal(
        ["message", "send", "proc-q", "--file", str(path), "--batch-size", "500"],
        subprocess_env,
        terminal="stderr",
    )
    assert code == 0, shown
    assert out.startswith("sent 3000 messages to queue 'proc-q'")
    assert "\rsending [" in shown and "100% 3,000" in shown
    assert Message.objects.count() == 3000
