"""manager.filemodes: the world-writable config check."""

from __future__ import annotations

from pathlib import Path

import pytest

from manager.config import load_config
from manager.filemodes import check_not_world_writable, config_files
from manager.ini import ConfigError


def _write(tmp_path: Path) -> tuple[Path, Path]:
    main = tmp_path / "supervisord.conf"
    inc = tmp_path / "progs.ini"
    main.write_text("[supervisord]\n[include]\nfiles = progs.ini\n")
    inc.write_text("[program:a]\ncommand = sleep 1\n")
    return main, inc


def test_config_files_are_the_main_file_then_the_included_ones(tmp_path: Path) -> None:
    main, inc = _write(tmp_path)
    assert config_files(load_config(main, cwd=tmp_path)) == [main, inc]


@pytest.mark.parametrize("mode", [0o644, 0o600, 0o664, 0o750])
def test_files_without_o_plus_w_pass(tmp_path: Path, mode: int) -> None:
    main, inc = _write(tmp_path)
    main.chmod(mode)
    inc.chmod(mode)
    check_not_world_writable([main, inc, tmp_path / "gone.ini"])


def test_a_world_writable_file_is_named_with_its_mode_and_the_fix(tmp_path: Path) -> None:
    main, inc = _write(tmp_path)
    inc.chmod(0o646)
    with pytest.raises(ConfigError) as exc:
        check_not_world_writable([main, inc])
    assert exc.value.file == str(inc)
    assert str(exc.value) == (
        f"{inc}: config file is world-writable (mode 0646): any local user could make"
        f" vigild run any command; fix it with: chmod o-w {inc}"
    )
