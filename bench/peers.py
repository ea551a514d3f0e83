"""The tools being compared, each as: install, a fresh state for a list of feed URLs, one poll's command.

- ``watcher``: ``watcher poll --once`` with a generated config (the shipped watch list, a webhook channel).
- ``naive``: bench/naive.py, a feedparser loop with a JSON seen-set and one regex per rule.
- ``rss2email`` (``r2e run``) delivering to a Maildir; its first run is ``r2e run --no-send``.
- ``feed2exec`` (``feed2exec fetch``) with its maildir output; its first run is ``--catchup``.

The two peers are installed with pip into their own virtual environments under ``bench/.peers/``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS_DIR = HERE / ".peers"
PINS = {"rss2email": "3.14", "feed2exec": "0.23.0"}


def _version(python: Path, dist: str) -> str | None:
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return out.stdout.strip() if out.returncode == 0 else None


def install_peer(name: str, *, log: bool = True) -> Path:
    """A virtual environment under bench/.peers/ holding peer ``name`` at its pinned version."""
    venv = PEERS_DIR / name
    python = venv / "bin" / "python"
    if python.exists() and _version(python, name) == PINS[name]:
        return venv
    if log:
        print(f"installing {name}=={PINS[name]} into {venv} ...", flush=True)
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", f"{name}=={PINS[name]}"]
    done = subprocess.run(pip, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"could not install {name}: {done.stderr[-2000:]}")
    return venv


@dataclass
class Tool:
    """One contender: how to give it a fresh state and how to run one poll."""

    name: str
    workdir: Path
    label: str = ""
    version: str = ""
    urls: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None

    def fresh(self, urls: list[str]) -> None:
        """Forget everything; subscribe to ``urls``."""
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        self.workdir.mkdir(parents=True)
        self.urls = list(urls)
        self._setup()

    def _setup(self) -> None:
        raise NotImplementedError

    def argv(self, *, first: bool) -> list[str]:
        raise NotImplementedError

    def emitted(self) -> int:
        """Messages this tool has emitted to its sink so far."""
        return 0


class Naive(Tool):
    """bench/naive.py under the same Python and feedparser as watcher."""

    def __init__(self, workdir: Path, rules: dict[str, str]) -> None:
        super().__init__("naive", workdir, label="naive loop (feedparser + regex)")
        self.rules = rules
        self.version = f"feedparser {_version(Path(sys.executable), 'feedparser')}"

    def _setup(self) -> None:
        (self.workdir / "urls.txt").write_text("\n".join(self.urls) + "\n", encoding="utf-8")
        (self.workdir / "rules.json").write_text(json.dumps(self.rules), encoding="utf-8")

    def argv(self, *, first: bool) -> list[str]:
        w = self.workdir
        return [sys.executable, str(HERE / "naive.py"), str(w / "urls.txt"), str(w / "rules.json"),
                str(w / "seen.json"), str(w / "matches.txt")]  # fmt: skip

    def emitted(self) -> int:
        path = self.workdir / "matches.txt"
        return sum(1 for _ in path.open(encoding="utf-8")) if path.exists() else 0


def _maildir_count(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file() and p.parent.name in ("new", "cur"))


class Rss2Email(Tool):
    def __init__(self, workdir: Path) -> None:
        super().__init__("rss2email", workdir, label=f"rss2email {PINS['rss2email']}")
        self.venv = install_peer("rss2email")
        self.version = _version(self.venv / "bin" / "python", "rss2email") or "?"

    def _setup(self) -> None:
        w = self.workdir
        (w / "Maildir" / "INBOX").mkdir(parents=True)
        for sub in ("new", "cur", "tmp"):
            (w / "Maildir" / "INBOX" / sub).mkdir()
        lines = [
            "[DEFAULT]",
            "to = analyst@example.org",
            "from = r2e@example.org",
            "email-protocol = maildir",
            f"maildir-path = {w / 'Maildir'}",
            "maildir-mailbox = INBOX",
            "feed-timeout = 60",
            "verbose = warning",
            "",
        ]
        for i, url in enumerate(self.urls):
            lines += [f"[feed.f{i}]", f"url = {url}", ""]
        (w / "r2e.cfg").write_text("\n".join(lines), encoding="utf-8")
        (w / "r2e.json").write_text(json.dumps({"version": 2, "feeds": []}), encoding="utf-8")

    def argv(self, *, first: bool) -> list[str]:
        w = self.workdir
        cmd = [str(self.venv / "bin" / "r2e"), "-c", str(w / "r2e.cfg"), "-d", str(w / "r2e.json"), "run"]
        return [*cmd, "--no-send"] if first else cmd

    def emitted(self) -> int:
        return _maildir_count(self.workdir / "Maildir")


class Feed2Exec(Tool):
    def __init__(self, workdir: Path) -> None:
        super().__init__("feed2exec", workdir, label=f"feed2exec {PINS['feed2exec']}")
        self.venv = install_peer("feed2exec")
        self.version = _version(self.venv / "bin" / "python", "feed2exec") or "?"

    def _setup(self) -> None:
        w = self.workdir
        lines = ["[DEFAULT]", "output = feed2exec.plugins.maildir", f"mailbox = {w / 'Maildir'}", ""]
        for i, url in enumerate(self.urls):
            lines += [f"[f{i}]", f"url = {url}", "folder = INBOX", ""]
        (w / "feed2exec.ini").write_text("\n".join(lines), encoding="utf-8")
        # its HTTP cache and seen-items database live in XDG_CACHE_HOME unless --database says otherwise
        self.env = {**os.environ, "XDG_CACHE_HOME": str(w / "cache"), "XDG_CONFIG_HOME": str(w / "config")}

    def argv(self, *, first: bool) -> list[str]:
        w = self.workdir
        cmd = [str(self.venv / "bin" / "feed2exec"), "--config", str(w / "feed2exec.ini"),
               "--database", str(w / "feed2exec.db"), "fetch"]  # fmt: skip
        # its default, sequential: `fetch --parallel` (parse in a process pool) measured slower here
        return [*cmd, "--catchup"] if first else cmd

    def emitted(self) -> int:
        return _maildir_count(self.workdir / "Maildir")
