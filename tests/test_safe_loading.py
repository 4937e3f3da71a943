"""Safe loading: nothing vadistill reads can run code, write outside its folder, or listen on the network.

The promises (README, "safe loading"):

* checkpoints load with ``torch.load(weights_only=True)``: a checkpoint whose pickle would run a
  command is refused with a one-line error, and the command does not run;
* third-party pickles (the I3D weights) only go through the restricted unpickler, whose allow-list
  holds data constructors only;
* archives are unpacked with path-traversal protection: ``..``, absolute paths and links out of the
  destination are refused and nothing is written outside;
* any network listener binds to localhost unless the user names another address.

Behavioural tests show each promise on hostile files; static tests read the whole source tree so
that a new ``torch.load`` or ``pickle.load`` elsewhere cannot quietly break them. (Hostile archives
of every other kind are in test_archive.py; the unpickler's numpy round trips in test_weights.py.)
"""

from __future__ import annotations

import ast
import importlib
import io
import os
import pickle
import stat
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from vadistill.backbones import weights as W
from vadistill.checkpoint import (
    load_checkpoint,
    load_method_checkpoint,
    save_checkpoint,
)
from vadistill.data.archive import unpack_archive
from vadistill.errors import InputError

SOURCE = Path(__file__).resolve().parents[1] / "src" / "vadistill"


class TouchesAFile:
    """Unpickling this runs ``touch <marker>``: proof of code execution if the marker appears."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


# -- (a) checkpoints --------------------------------------------------------------------------------
@pytest.mark.parametrize("zip_format", [True, False], ids=["torch-zip", "legacy-pickle"])
def test_malicious_checkpoint_is_refused_and_runs_nothing(tmp_path, zip_format):
    marker = tmp_path / "code-ran"
    path = tmp_path / "model.ckpt"
    torch.save({"method": "aed-mae", "format_version": 1, "state_dict": TouchesAFile(marker)}, path,
               _use_new_zipfile_serialization=zip_format)
    for load in (load_checkpoint, lambda p: load_method_checkpoint(p, "aed-mae", 1)):
        with pytest.raises(InputError) as refused:
            load(path)
        assert refused.value.path == str(path) and "\n" not in str(refused.value)
    assert not marker.exists()


def test_malicious_checkpoint_through_the_runtime_loader(tmp_path):
    from vadistill.runtime.model import load_method, load_model

    marker = tmp_path / "code-ran"
    path = tmp_path / "model.ckpt"
    torch.save({"method": "aed-mae", "net": TouchesAFile(marker)}, path)
    for load in (load_method, load_model):
        with pytest.raises(InputError, match="safe loader"):
            load(path)
    assert not marker.exists()


def test_plain_checkpoints_still_load(tmp_path):
    path = save_checkpoint(tmp_path / "model.ckpt", {"method": "x", "w": torch.ones(2), "cfg": {"a": (1, 2)}})
    assert torch.equal(load_checkpoint(path)["w"], torch.ones(2))


# -- (b) the restricted unpickler -------------------------------------------------------------------
# What rebuilding numpy arrays and plain containers needs, and nothing else. Adding a name here is
# a security decision: this test makes it a visible one.
EXPECTED_ALLOW_LIST = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"), ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
}


def test_the_allow_list_holds_data_constructors_only():
    assert set(W.SAFE_GLOBALS) == EXPECTED_ALLOW_LIST


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("module, name", [("builtins", "eval"), ("builtins", "getattr"), ("os", "system"),
                                          ("importlib", "import_module"), ("numpy", "load"),
                                          ("numpy.testing", "_private"), ("torch", "load")])
def test_the_unpickler_refuses_globals_off_the_list(module, name, protocol):
    # A hand-made pickle naming the global: protocol 0-2 use the GLOBAL opcode, 4-5 STACK_GLOBAL;
    # both reach find_class, which refuses before anything is imported or called.
    payload = _pickle_naming(module, name, protocol)
    with pytest.raises(pickle.UnpicklingError, match=f"{module}.{name}"):
        W.restricted_loads(payload)


def _pickle_naming(module: str, name: str, protocol: int) -> bytes:
    if protocol < 4:
        return b"c" + module.encode() + b"\n" + name.encode() + b"\n."  # GLOBAL, STOP
    short = pickle.SHORT_BINUNICODE
    return (pickle.PROTO + bytes([protocol]) + short + bytes([len(module)]) + module.encode()
            + short + bytes([len(name)]) + name.encode() + pickle.STACK_GLOBAL + pickle.STOP)


def test_malicious_weight_file_in_an_archive_is_refused_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("VADISTILL_CACHE", str(tmp_path / "cache"))
    marker = tmp_path / "code-ran"
    source = W.WeightSource(name="tiny", requirement="tiny==1", sdist=True, member="tiny/w.ckpt", kind="pickle",
                            convert=lambda tree: {}, is_converted=lambda sd: False)
    evil = pickle.dumps({"params": {"w": np.ones(2)}, "x": TouchesAFile(marker)})
    archive = tmp_path / "tiny-1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("tiny-1/tiny/w.ckpt")
        info.size = len(evil)
        tar.addfile(info, io.BytesIO(evil))
    with pytest.raises(InputError) as refused:
        W.load_state_dict(source, weights=archive)
    assert "unsafe" in str(refused.value) and "posix.system" in str(refused.value)
    assert not marker.exists() and not (tmp_path / "cache").exists()  # nothing cached either


def test_weight_archives_are_read_never_unpacked(tmp_path):
    # The weight member is read into memory; a hostile member name cannot write anywhere.
    archive = tmp_path / "w.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in (("../../escaped", b"x"), ("pkg-1/tiny/w.ckpt", b"weights")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    before = set(tmp_path.parent.parent.iterdir())
    assert W._read_member(archive, "tiny/w.ckpt") == b"weights"
    assert set(tmp_path.parent.parent.iterdir()) == before and not (tmp_path.parent / "escaped").exists()


# -- (c) archives: the traversal variants test_archive.py does not build ---------------------------
def _zip(path: Path, entries: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zipped:
        for name, data in entries.items():
            zipped.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zipped.writestr(info, target)
    return path


def _tar(path: Path, files: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return path


@pytest.mark.parametrize("build", [
    lambda p: _zip(p / "a.zip", {"ok/x": b"1", "ok/../../escaped": b"2"}),  # '..' in the middle
    lambda p: _zip(p / "b.zip", {"ok/x": b"1"}, links={"ok/link": "/etc"}),  # absolute symlink
    lambda p: _zip(p / "c.zip", {"ok/x": b"1", "./../escaped": b"2"}),
    lambda p: _tar(p / "d.tar", {"ok/x": b"1", "ok/../../escaped": b"2"}),
    lambda p: _tar(p / "e.tar", {"ok/x": b"1"}, links={"ok/up": "sub/../../.."}),  # climbs out in steps
], ids=["zip-middle-dotdot", "zip-absolute-symlink", "zip-dot-dotdot", "tar-middle-dotdot", "tar-stepwise-symlink"])
def test_traversal_archives_are_refused_and_write_nothing_outside(tmp_path, build):
    archives = tmp_path / "archives"
    archives.mkdir()
    destination = tmp_path / "data" / "dataset"
    archive = build(archives)
    before = set(tmp_path.rglob("*"))
    with pytest.raises(InputError, match="refusing to unpack") as refused:
        unpack_archive(archive, destination, progress=False)
    assert "\n" not in str(refused.value) and refused.value.path == str(archive)
    created = set(tmp_path.rglob("*")) - before
    assert created <= {tmp_path / "data", destination}, created  # the empty destination, nothing else


# -- (d) the whole source tree, read ---------------------------------------------------------------
# Each check returns the offending places ("path:line what") under a source root; the tests run
# them on vadistill's source, and test_the_checks_catch_planted_violations on a tree built to fail.
def _modules(root: Path) -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(), str(path))) for path in sorted(root.rglob("*.py"))]


def _calls(tree: ast.AST):
    return (node for node in ast.walk(tree) if isinstance(node, ast.Call))


def _dotted(node: ast.AST | None) -> str:
    """``torch.load`` for the call target ``torch.load``; "" for anything not a plain dotted name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _where(root: Path, path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(root)}:{node.lineno}"


def torch_loads_without_weights_only(root: Path) -> list[str]:
    return [_where(root, path, call) for path, tree in _modules(root) for call in _calls(tree)
            if _dotted(call.func) in ("torch.load", "torch.serialization.load")
            and not _is_true(_keyword(call, "weights_only"))]


UNSAFE_LOADERS = ("pickle.load", "pickle.loads", "pickle.Unpickler", "cPickle.load", "cPickle.loads", "marshal.load",
                  "marshal.loads", "shelve.open", "dill.load", "dill.loads", "joblib.load", "torch.jit.load",
                  "yaml.unsafe_load", "yaml.full_load")


def unrestricted_unpickling(root: Path) -> list[str]:
    offenders = []
    for path, tree in _modules(root):
        for call in _calls(tree):
            target = _dotted(call.func)
            if target in UNSAFE_LOADERS:
                offenders.append(f"{_where(root, path, call)} {target}")
            flag = _keyword(call, "allow_pickle")
            if target in ("np.load", "numpy.load") and flag is not None and not (
                    isinstance(flag, ast.Constant) and flag.value is False):
                offenders.append(f"{_where(root, path, call)} np.load(allow_pickle=...)")
        for node in ast.walk(tree):
            # The one Unpickler subclass allowed is the restricted one, which closes find_class.
            if isinstance(node, ast.ClassDef) and any(_dotted(b).endswith("Unpickler") for b in node.bases):
                methods = {item.name for item in node.body if isinstance(item, ast.FunctionDef)}
                if path.name != "weights.py" or "find_class" not in methods:
                    offenders.append(f"{_where(root, path, node)} class {node.name}")
    return offenders


def unguarded_extraction(root: Path) -> list[str]:
    offenders = []
    for path, tree in _modules(root):
        for call in _calls(tree):
            if isinstance(call.func, ast.Attribute) and call.func.attr in ("extractall", "extract"):
                # data/archive.py checks every member before it hands them to extractall/extract.
                checked = path.name == "archive.py" and (call.func.attr == "extract"
                                                         or _keyword(call, "members") is not None)
                if not checked:
                    offenders.append(_where(root, path, call))
            if _dotted(call.func) == "shutil.unpack_archive":
                offenders.append(_where(root, path, call))
    return offenders


LOOPBACK = ("127.0.0.1", "localhost", "::1")
# Keyword arguments that choose where a server listens (socket, http.server, Dask, uvicorn, ...).
ADDRESS_OPTIONS = ("host", "bind", "interface", "listen", "dashboard_address", "ip")
SERVERS = ("HTTPServer", "ThreadingHTTPServer", "TCPServer", "UDPServer", "start_server", "create_server")


def _is_loopback(value: ast.AST) -> bool:
    """A literal loopback address, or None (no listener: the libraries' off switch). A variable is an
    address the user gave ("unless told otherwise"); a computed string is not allowed."""
    if isinstance(value, ast.Constant):
        return value.value is None or (isinstance(value.value, str) and value.value.startswith(LOOPBACK))
    return not isinstance(value, (ast.JoinedStr, ast.BinOp))


def listeners_off_localhost(root: Path) -> list[str]:
    offenders = []
    for path, tree in _modules(root):
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and (
                    node.value.startswith("0.0.0.0") or node.value in ("::", "[::]")):  # every interface
                offenders.append(f"{_where(root, path, node)} {node.value!r}")
            if isinstance(node, ast.Dict):  # e.g. scheduler_kwargs={"dashboard_address": ...}
                for key, value in zip(node.keys, node.values):
                    if isinstance(key, ast.Constant) and key.value in ADDRESS_OPTIONS and not _is_loopback(value):
                        offenders.append(f"{_where(root, path, node)} {key.value!r}: {ast.unparse(value)}")
        for call in _calls(tree):
            for name in ADDRESS_OPTIONS:
                value = _keyword(call, name)
                if value is not None and not _is_loopback(value):
                    offenders.append(f"{_where(root, path, call)} {name}={ast.unparse(value)}")
            if isinstance(call.func, ast.Attribute) and call.func.attr == "bind" and call.args:
                address = call.args[0]
                host = address.elts[0] if isinstance(address, ast.Tuple) and address.elts else address
                if not _is_loopback(host):
                    offenders.append(f"{_where(root, path, call)} bind({ast.unparse(address)})")
            if _dotted(call.func).endswith(SERVERS):
                offenders.append(f"{_where(root, path, call)} {_dotted(call.func)}: check its address, then allow it")
    return offenders


def shell_or_dynamic_code(root: Path) -> list[str]:
    offenders = []
    for path, tree in _modules(root):
        for call in _calls(tree):
            target = _dotted(call.func)
            if target in ("eval", "exec", "compile", "os.system", "os.popen"):
                offenders.append(f"{_where(root, path, call)} {target}")
            if target in ("__import__", "importlib.import_module") and not (
                    call.args and isinstance(call.args[0], ast.Constant)):
                offenders.append(f"{_where(root, path, call)} {target} of a computed name")
            if _is_true(_keyword(call, "shell")):
                offenders.append(f"{_where(root, path, call)} shell=True")
    return offenders


STATIC_CHECKS = [torch_loads_without_weights_only, unrestricted_unpickling, unguarded_extraction,
                 listeners_off_localhost, shell_or_dynamic_code]


@pytest.mark.parametrize("check", STATIC_CHECKS, ids=lambda check: check.__name__)
def test_the_source_tree_passes(check):
    assert check(SOURCE) == []


def test_the_source_tree_is_really_read():
    # Guards against a check that passes because it finds nothing to look at.
    loads = [call for _, tree in _modules(SOURCE) for call in _calls(tree) if _dotted(call.func) == "torch.load"]
    assert len(loads) >= 2 and len(_modules(SOURCE)) > 40


PLANTED = {
    torch_loads_without_weights_only: "import torch\ntorch.load('m.pt')\ntorch.load('m.pt', weights_only=False)\n",
    unrestricted_unpickling: ("import pickle, numpy as np\npickle.loads(b'')\nnp.load('a.npy', allow_pickle=True)\n"
                              "class Mine(pickle.Unpickler):\n    pass\n"),
    unguarded_extraction: "import tarfile, shutil\ntarfile.open('a.tar').extractall('out')\nshutil.unpack_archive('a.zip')\n",
    listeners_off_localhost: ("import socket, http.server\nsocket.socket().bind(('0.0.0.0', 80))\n"
                              "http.server.HTTPServer(('', 8000), None)\nrun(host='0.0.0.0')\n"),
    shell_or_dynamic_code: "import subprocess\nsubprocess.run('ls', shell=True)\neval('1')\n",
}


@pytest.mark.parametrize("check", STATIC_CHECKS, ids=lambda check: check.__name__)
def test_the_checks_catch_planted_violations(check, tmp_path):
    (tmp_path / "planted.py").write_text(PLANTED[check])
    assert len(check(tmp_path)) >= 2, check(tmp_path)


def test_yaml_is_only_read_with_a_safe_loader():
    import yaml

    offenders = []
    for path, tree in _modules(SOURCE):
        for call in _calls(tree):
            if _dotted(call.func) not in ("yaml.load", "yaml.load_all"):
                continue
            loader = _dotted(_keyword(call, "Loader"))
            module = importlib.import_module(".".join(path.relative_to(SOURCE.parent).with_suffix("").parts))
            chosen = yaml.SafeLoader if loader in ("yaml.SafeLoader", "yaml.CSafeLoader") else \
                getattr(module, loader, None) if loader else None
            if not (isinstance(chosen, type) and issubclass(chosen, (yaml.SafeLoader, yaml.CSafeLoader))):
                offenders.append(_where(SOURCE, path, call))
    assert offenders == [], f"yaml.load without a SafeLoader: {offenders}"
