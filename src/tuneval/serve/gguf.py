"""GGUF files for llama.cpp, Ollama and LM Studio, written by llama.cpp's own converters.

Why not our own writer: PyPI's `gguf` package (ggml's) writes GGUF containers, but mapping a
Hugging Face checkpoint to llama.cpp's tensor names, rope layouts, tokenizer pre-processing and
quantization rules per architecture is what llama.cpp's `convert_hf_to_gguf.py` (and
`convert_lora_to_gguf.py`) does and keeps up to date; re-writing it would drift. No package from
llama.cpp's maintainers installs those scripts, but PyPI's `llama-cpp-python` source distribution
vendors llama.cpp, the scripts and their matching `gguf-py`. `install_converter` takes that sdist
(pinned by version and sha256) once, keeps only the converter files under
$TUNEVAL_HOME/llama.cpp/<version>, and from then on conversion is offline: the scripts run in this
Python (torch, transformers and, for some tokenizers, sentencepiece) as a child process.

Outputs are named as llama.cpp names them: `model-Q8_0.gguf`, `model-F16.gguf`, ...
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from tuneval.errors import TunevalError
from tuneval.io import file_sha256

LLAMA_CPP_PYTHON = "0.3.36"  # the llama-cpp-python sdist the converter comes from
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
VENDORED = f"llama_cpp_python-{LLAMA_CPP_PYTHON}/vendor/llama.cpp/"
KEEP = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "conversion/", "gguf-py/gguf/", "LICENSE")
OUTTYPES = ("f32", "f16", "bf16", "q8_0")  # convert_hf_to_gguf.py --outtype (also convert_lora_to_gguf.py's)
MODEL_SCRIPT, LORA_SCRIPT = "convert_hf_to_gguf.py", "convert_lora_to_gguf.py"
INSTALL_HINT = "python -m tuneval.serve.gguf install"
ERROR_LINE = re.compile(r"^(?:[\w.]+Error|NotImplementedError|Exception|KeyError|AssertionError)\b.*$", re.M)


def file_name(stem: str, outtype: str) -> str:
    """llama.cpp's naming: model-Q8_0.gguf, model-F16.gguf, adapter-BF16.gguf."""
    return f"{stem}-{outtype.upper()}.gguf"


def check_outtypes(outtypes: list[str]) -> list[str]:
    if not outtypes:
        raise TunevalError(f"--outtype: give at least one of {', '.join(OUTTYPES)}")
    wrong = [t for t in outtypes if t.lower() not in OUTTYPES]
    if wrong:
        raise TunevalError(f"--outtype: {wrong[0]!r} is not one of {', '.join(OUTTYPES)} "
                           "(other llama.cpp quantizations: run llama-quantize on the F16 file)")
    return list(dict.fromkeys(t.lower() for t in outtypes))


def default_dir() -> Path:
    from tuneval.models.catalogue import tuneval_home

    return tuneval_home() / "llama.cpp" / LLAMA_CPP_PYTHON


def converter_dir(given: str | Path | None = None) -> Path:
    """Where the converter is: `given` (a llama.cpp checkout), else $TUNEVAL_LLAMA_CPP, else the installed
    copy. Refused in one line, before any model loads, when the scripts or their Python needs are missing."""
    where = Path(given or os.environ.get("TUNEVAL_LLAMA_CPP") or default_dir()).expanduser()
    if not (where / MODEL_SCRIPT).is_file():
        how = "pass --llama-cpp DIR (a llama.cpp checkout) or " if given is None else ""
        raise TunevalError(f"llama.cpp's GGUF converter is not in {where} ({MODEL_SCRIPT} missing): {how}"
                           f"install it once with `{INSTALL_HINT}` (llama-cpp-python {LLAMA_CPP_PYTHON}'s sdist "
                           "from PyPI, then offline)")
    if importlib.util.find_spec("sentencepiece") is None:
        raise TunevalError("llama.cpp's GGUF converter needs sentencepiece: pip install 'tuneval[gguf]' "
                           "(or pip install sentencepiece)")
    return where


def install_converter(dest: Path | None = None, sdist: Path | None = None) -> Path:
    """Fetch llama-cpp-python's sdist (sha256-checked by pip) unless `sdist` is given, and keep the converter."""
    dest = Path(dest or default_dir())
    if (dest / MODEL_SCRIPT).is_file():
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        if sdist is None:
            sdist = _download(Path(tmp))
        _check_sha256(sdist)
        staging = Path(tmp) / "out"
        _extract(sdist, staging)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.move(str(staging), dest)  # whole or not at all: the scripts appear last, from one move
    return dest


def _download(tmp: Path) -> Path:
    pins = tmp / "requirements.txt"
    pins.write_text(f"llama-cpp-python=={LLAMA_CPP_PYTHON} --hash=sha256:{SDIST_SHA256}\n", encoding="utf-8")
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
           "--require-hashes", "-r", str(pins), "-d", str(tmp)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(tmp.glob("llama_cpp_python-*.tar.gz"))
    if done.returncode != 0 or not found:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise TunevalError(f"could not download llama-cpp-python {LLAMA_CPP_PYTHON}'s sdist from PyPI ({last})")
    return found[0]


def _check_sha256(sdist: Path) -> None:
    digest = file_sha256(sdist)
    if digest != SDIST_SHA256:
        raise TunevalError(f"{sdist}: sha256 {digest} is not llama-cpp-python {LLAMA_CPP_PYTHON}'s ({SDIST_SHA256})")


def _extract(sdist: Path, staging: Path) -> None:
    with tarfile.open(sdist, "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(VENDORED)
                   and any(m.name[len(VENDORED):].startswith(k) for k in KEEP) and (m.isfile() or m.isdir())]
        for m in members:
            m.name = m.name[len(VENDORED):]
        try:
            tar.extractall(staging, members=members, filter="data")  # "data": no links out, no absolute paths
        except tarfile.FilterError as e:
            raise TunevalError(f"{sdist}: refused a member that would land outside {staging} ({e})") from None
    if not (staging / MODEL_SCRIPT).is_file():
        raise TunevalError(f"{sdist}: no {MODEL_SCRIPT} under {VENDORED}")


def _run(script: Path, args: list[str], what: str) -> None:
    """Run a converter script; its failure becomes one line with the converter's own error."""
    env = {k: v for k, v in os.environ.items() if k != "NO_LOCAL_GGUF"}  # use the gguf-py beside the script
    env["PYTHONPATH"] = os.pathsep.join([str(script.parent), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env,
                          cwd=script.parent)
    if done.returncode != 0:
        found = ERROR_LINE.findall(done.stderr)
        why = found[-1] if found else (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise TunevalError(f"GGUF conversion of {what} failed in llama.cpp's {script.name}: {why.strip()}")


def convert_model(hf_dir: Path, out_file: Path, outtype: str, converter: Path) -> Path:
    """A Hugging Face checkpoint directory (weights, config, tokenizer) as one GGUF file."""
    _run(converter / MODEL_SCRIPT, [str(hf_dir), "--outfile", str(out_file), "--outtype", outtype], str(hf_dir))
    return out_file


def convert_lora(adapter_dir: Path, base_dir: Path, out_file: Path, outtype: str, converter: Path) -> Path:
    """A PEFT LoRA adapter as a GGUF LoRA (llama.cpp's --lora), against its base in Hugging Face format."""
    _run(converter / LORA_SCRIPT, [str(adapter_dir), "--base", str(base_dir), "--outfile", str(out_file),
                                   "--outtype", outtype], str(adapter_dir))
    return out_file


def modelfile(gguf: str, adapter: str | None = None) -> str:
    """Ollama's Modelfile: FROM the GGUF (Ollama reads the chat template from its metadata), ADAPTER a LoRA."""
    lines = ["# ollama create my-model -f Modelfile && ollama run my-model", f"FROM ./{gguf}"]
    if adapter:
        lines.append(f"ADAPTER ./{adapter}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """`python -m tuneval.serve.gguf install [--sdist FILE]`: the one network step, done once."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] != "install" or len(args) not in (1, 3) or (len(args) == 3 and args[1] != "--sdist"):
        print("usage: python -m tuneval.serve.gguf install [--sdist llama_cpp_python-X.tar.gz]", file=sys.stderr)
        return 2
    try:
        where = install_converter(sdist=Path(args[2]) if len(args) == 3 else None)
    except TunevalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"llama.cpp's GGUF converter (llama-cpp-python {LLAMA_CPP_PYTHON}) is in {where}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
