"""Command-line options generated from a config dataclass, so that no setting is declared twice.

``@config_options(R3Config)`` on a typer command adds one ``--option`` per field of the dataclass
(``num_candidates`` -> ``--num-candidates``), whose help is the field's own comment in the
dataclass source and whose default is "the config's default". The command receives what the
user set as ``config_overrides`` (a dict of field -> value) and builds the config with
``R3Config(**config_overrides)``: a new field is a new option without touching the CLI.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import types
import typing
from typing import Any, Callable, Optional

import typer

_COMMENT = re.compile(r"^\s+(\w+)\s*:[^#]*#\s*(.+?)\s*$")


def field_comments(cls: type) -> dict[str, str]:
    """Field name -> the comment on its line in the class source (empty when there is none)."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    return {m.group(1): m.group(2) for m in map(_COMMENT.match, source.splitlines()) if m}


def _option_type(hint: Any) -> tuple[type, Callable[[Any], Any]]:
    """The scalar type typer parses, and how to turn the parsed value into the field's value."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _option_type(args[0])
    if origin is tuple:  # tuple[int, ...] / tuple[str, ...]: comma-separated on the command line
        item = args[0] if args else str
        return str, lambda text: tuple(item(part.strip()) for part in text.split(",") if part.strip())
    if hint in (int, float, str, bool):
        return hint, lambda value: value
    raise TypeError(f"no command-line option type for {hint!r}")


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def config_options(config_cls: type, *, skip: tuple[str, ...] = (),
                   aliases: dict[str, tuple[str, ...]] | None = None) -> Callable[[Callable], Callable]:
    """Decorate a typer command: one option per ``config_cls`` field (but ``skip``), passed as ``config_overrides``.

    ``aliases``: field -> extra option names it also answers to (``{"total_timesteps": ("--steps",)}``).
    """
    hints = typing.get_type_hints(config_cls)
    comments = field_comments(config_cls)
    fields = [f for f in dataclasses.fields(config_cls) if f.name not in skip]

    def decorate(command: Callable) -> Callable:
        own = inspect.signature(command, eval_str=True)
        if "config_overrides" not in own.parameters:
            raise TypeError(f"{command.__name__} must take config_overrides to receive {config_cls.__name__} options")
        parameters = [p for p in own.parameters.values() if p.name != "config_overrides"]
        taken = {p.name for p in parameters}
        converters: dict[str, Callable[[Any], Any]] = {}
        for f in fields:
            if f.name in taken:
                raise TypeError(f"{command.__name__} declares {f.name!r} itself: skip it in config_options")
            option_type, converters[f.name] = _option_type(hints[f.name])
            default = _default(f)
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            shown = "unset" if shown is None else shown
            text = comments.get(f.name, "").rstrip(".")
            help_text = f"{text} (default: {shown})." if text else f"default: {shown}."
            extra = (aliases or {}).get(f.name, ())
            if extra and option_type is bool:
                raise TypeError(f"{f.name}: a flag (--x/--no-x) takes no aliases")
            names = (f"--{f.name.replace('_', '-')}", *extra) if extra else ()
            parameters.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                                default=typer.Option(None, *names, help=help_text),
                                                annotation=Optional[option_type]))

        @functools.wraps(command)
        def wrapper(**kwargs):
            overrides = {}
            for name, convert in converters.items():
                value = kwargs.pop(name, None)
                if value is not None:
                    overrides[name] = convert(value)
            return command(**kwargs, config_overrides=overrides)

        del wrapper.__wrapped__  # typer must see the generated signature, not the command's own
        wrapper.__signature__ = own.replace(parameters=parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper

    return decorate
