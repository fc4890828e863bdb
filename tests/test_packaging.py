"""Packaging: every gin folder ships as data files, so an installed mlit finds its gin files."""

import configparser
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_every_gin_folder_is_installed():
  cfg = configparser.ConfigParser()
  cfg.read(ROOT / 'setup.cfg')
  shipped = {k: v.strip() for k, v in cfg['options.data_files'].items()}
  folders = {p.parent.relative_to(ROOT).as_posix() for p in (ROOT / 'gin').rglob('*.gin')}
  for folder in folders:
    assert shipped.get(f'share/mlit/{folder}') == f'{folder}/*.gin', folder


def test_cli_subcommands_import():
  import importlib  # pylint: disable=import-outside-toplevel

  from mlit.commands import cli  # pylint: disable=import-outside-toplevel

  for command, module in cli.COMMANDS.items():
    assert hasattr(importlib.import_module(module), 'main'), command
