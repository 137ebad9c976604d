"""`tunkit check` / `tunkit genkey` and the shipped example configs."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys

import pytest

from tunkit.cli import main

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").rglob("*.toml"))


@pytest.fixture
def examples(tmp_path):
    """A copy of examples/ with the key files a user would make with `tunkit genkey`."""
    dst = tmp_path / "examples"
    shutil.copytree(ROOT / "examples", dst)
    for cfg in dst.rglob("*.toml"):
        for line in cfg.read_text().splitlines():
            if line.strip().startswith(("key_file", "private_key_file", "preshared_key_file")):
                key = cfg.parent / line.split("=", 1)[1].strip().strip('"')
                if not key.exists():
                    assert main(["genkey", str(key)]) == 0
    return dst


def test_there_are_examples():
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_is_accepted(examples, path, capsys):
    copy = examples / path.relative_to(ROOT / "examples")
    assert main(["check", str(copy)]) == 0, capsys.readouterr().err
    assert main(["check", "-j", str(copy)]) == 0
    doc = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert doc["peers"] and doc["network"]["addresses"]
    for key in copy.parent.glob("*.key"):  # never print key material
        assert key.read_text().strip() not in json.dumps(doc)


def test_check_invalid_exit_1_and_names_key(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[network]\naddresses = ["198.18.0.1/16"]\ninsecure = true\n'
                   '[[peers]]\nname = "b"\nendpoint = "198.51.100.2:4800"\nprefixes = ["198.18.0.2/32"]\n'
                   '[[unsafe_routes]]\nroute = "192.0.2.0/24"\nvia = [{gateway = "198.18.0.2", weight = 0}]\n')
    assert main(["check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:unsafe_routes[0].via[0].weight: 0 is not an integer weight" in err


def test_genkey_mode_and_refusal(tmp_path, capsys):
    k = tmp_path / "k.key"
    assert main(["genkey", str(k)]) == 0
    assert stat.S_IMODE(os.stat(k).st_mode) == 0o600
    before = k.read_bytes()
    assert main(["genkey", str(k)]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert k.read_bytes() == before
    assert main(["genkey", str(tmp_path / "no" / "dir.key")]) == 2


def test_python_m_tunkit_help_and_version():
    out = subprocess.run([sys.executable, "-m", "tunkit", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and "exit status" in out.stdout and "check" in out.stdout
    out = subprocess.run([sys.executable, "-m", "tunkit", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.startswith("tunkit ")
    out = subprocess.run([sys.executable, "-m", "tunkit"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 1 and "usage" in out.stderr


@pytest.mark.parametrize("extra,mode", [("", "insecure (no authentication)"),
                                        ("partial_checksums = true\n", "partial checksums: tunkit peers only")])
def test_check_names_the_mode(tmp_path, capsys, extra, mode):
    cfg = tmp_path / "i.toml"
    cfg.write_text('[network]\naddresses = ["198.18.0.1/16"]\ninsecure = true\n' + extra +
                   '[[peers]]\nname = "b"\nendpoint = "198.51.100.2:4800"\nprefixes = ["198.18.0.2/32"]\n')
    assert main(["check", str(cfg)]) == 0
    assert mode in capsys.readouterr().out
