"""The house rules of kws_zoo, checked on the source (ast) and in fresh processes.

1. Imports go only downward in the stage order (LEVELS); two stages of the same level do not import each other;
   device/ imports only core/. Every import counts, module-level and function-local.
2. No import cycle between modules (module-level imports: what runs when a module is imported).
3. No `from X import _name` of another module's private name, in kws_zoo and in tests.
4. device/ runs without TensorFlow; `kws-zoo --help` and every `kws-zoo SUBCOMMAND --help` too, in under 1 s.
5. setup.py installs kws_zoo and its sub-packages only.
6. argparse and `if __name__ == "__main__"` only in cli.py (none at all for the latter); exceptions only in
   core/errors.py, and USER_ERRORS lists only the package's own classes.

The checker functions take the package folder, so the tests at the bottom run them on a fake package too.
"""
from __future__ import annotations

import ast
import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "kws_zoo"
TESTS = REPO / "tests"

# Stage of each first-level name under kws_zoo/ (folder or top-level module), and its level: a stage imports only
# stages of a lower level. kws_zoo/reparam.py and kws_zoo/streaming.py are thin public re-exports of kws_zoo.export.*,
# so they belong to the export stage; kws_zoo/distribute.py is the training stage's distribution strategy. The
# package root (kws_zoo/__init__.py) is level 0 and its own stage; its function-local imports (the lazy public names
# of its __getattr__) may reach any stage.
LEVELS = {"core": 0, "data": 1, "layers": 1, "device": 1, "models": 2, "compress": 3, "export": 3, "recipe": 4,
          "rundir": 4, "train": 5, "evaluate": 5, "hub": 5, "workflows": 6, "cli": 7}
STAGE_OF = {"reparam": "export", "streaming": "export", "distribute": "train"}
ROOT_STAGE = "(package root)"
# device/ is the TFLM side without TensorFlow: it may import core/ only (and the package root).
DEVICE_MAY_IMPORT = {"core", ROOT_STAGE}


@dataclasses.dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported module of the package, dotted
    path: str  # file, relative to the repository
    line: int
    module_level: bool  # runs when `source` is imported (not inside a function)
    text: str  # the import statement as written


@dataclasses.dataclass(frozen=True)
class Violation:
    path: str
    line: int
    what: str
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what} -- {self.why}"


def report(title: str, violations: list) -> str:
    return f"{len(violations)} {title}:\n" + "\n".join(f"  {v}" for v in violations)


# ----------------------------------------------------------------------------------------------------------------
# Reading the package
# ----------------------------------------------------------------------------------------------------------------

def python_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path, package_dir: Path) -> str:
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules(package_dir: Path) -> dict[str, Path]:
    """{dotted module name: file} of every module of the package (packages by their __init__.py)."""
    return {module_name(p, package_dir): p for p in python_files(package_dir)}


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _walk_with_scope(tree: ast.AST) -> Iterator[tuple[ast.AST, bool, bool]]:
    """(node, at module level, under `if TYPE_CHECKING`) for every node; module level = outside any function body."""
    def visit(node, module_level, type_checking):
        for child in ast.iter_child_nodes(node):
            yield child, module_level, type_checking
            in_function = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            checking = type_checking or (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
            yield from visit(child, module_level and not in_function, checking)

    yield from visit(tree, True, False)


def _is_package(name: str, modules: dict[str, Path]) -> bool:
    return modules[name].name == "__init__.py"


def _resolve_relative(source: str, node: ast.ImportFrom, modules: dict[str, Path]) -> str:
    """The absolute module named by `from ..x import y` in module `source`."""
    if not node.level:
        return node.module or ""
    base = source.split(".")
    if not _is_package(source, modules):
        base = base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of `name` that is a module of the package (an `import a.b.c` of a non-module c names b)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def imports_of(package_dir: Path) -> list[Import]:
    """Every import of a package module by a package module: `import a.b`, `from a import b` (b a sub-module or a
    name), relative imports, module-level and function-local."""
    modules = package_modules(package_dir)
    top = package_dir.name
    found = []
    for source, path in modules.items():
        rel = str(path.relative_to(package_dir.parent))
        for node, module_level, type_checking in _walk_with_scope(parse(path)):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve_relative(source, node, modules)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.append(full if full in modules else base)
            for target in targets:
                if target != top and not target.startswith(top + "."):
                    continue
                known = _known(target, modules)
                if known and known != source:
                    found.append(Import(source, known, rel, node.lineno, module_level and not type_checking,
                                        ast.unparse(node)))
    return list(dict.fromkeys(found))  # `from a import b, c` of two names of one module is one import


def stage(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return ROOT_STAGE
    return STAGE_OF.get(parts[1], parts[1])


def level(module: str) -> int | None:
    name = stage(module)
    return 0 if name == ROOT_STAGE else LEVELS.get(name)


# ----------------------------------------------------------------------------------------------------------------
# The checks
# ----------------------------------------------------------------------------------------------------------------

def layer_violations(package_dir: Path) -> list[Violation]:
    """Upward imports, imports between two stages of the same level, device/ importing more than core/, and
    modules in no stage at all."""
    out = []
    for imp in imports_of(package_dir):
        src, dst = stage(imp.source), stage(imp.target)
        src_level, dst_level = level(imp.source), level(imp.target)
        where = "module level" if imp.module_level else "function-local"
        what = f"{imp.text} ({where})"
        if src_level is None or dst_level is None:
            unknown = imp.source if src_level is None else imp.target
            out.append(Violation(imp.path, imp.line, what, f"{unknown} is in no stage of LEVELS"))
        elif src == dst:
            continue
        elif src == "device" and dst not in DEVICE_MAY_IMPORT:
            out.append(Violation(imp.path, imp.line, what, f"device/ imports only core/, not {dst}"))
        elif dst == ROOT_STAGE:
            continue  # the package root runs before any of its modules anyway
        elif src == ROOT_STAGE and not imp.module_level:
            continue  # the root's lazy public names (PEP 562 __getattr__): `import kws_zoo` imports no stage
        elif dst_level > src_level:
            out.append(Violation(imp.path, imp.line, what,
                                 f"upward: {src} (level {src_level}) imports {dst} (level {dst_level})"))
        elif dst_level == src_level:
            out.append(Violation(imp.path, imp.line, what, f"sideways: {src} and {dst} are both level {src_level}"))
    return sorted(out, key=lambda v: (v.path, v.line))


def cycles(package_dir: Path) -> list[list[Import]]:
    """Import cycles between modules through module-level imports: each strongly connected component of more than
    one module (or a module importing itself), as the edges inside it."""
    edges: dict[str, list[Import]] = {}
    for imp in imports_of(package_dir):
        if imp.module_level:
            edges.setdefault(imp.source, []).append(imp)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan; the graph is small, recursion depth is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for imp in edges.get(v, []):
            w = imp.target
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            components.append(component)

    for v in sorted(edges):
        if v not in index:
            strongconnect(v)
    found = []
    for component in components:
        inner = sorted((imp for v in component for imp in edges.get(v, []) if imp.target in component),
                       key=lambda i: (i.path, i.line))
        if len(component) > 1 or inner:
            found.append(inner)
    return found


def cycle_violations(package_dir: Path) -> list[Violation]:
    out = []
    for inner in cycles(package_dir):
        members = sorted({i.source for i in inner})
        for imp in inner:
            out.append(Violation(imp.path, imp.line, imp.text, f"module-level import in the cycle {members}"))
    return out


def _private(name: str) -> bool:
    return name.startswith("_") and not name.endswith("__")


def private_import_violations(roots: list[Path], base: Path, package_dir: Path | None = None) -> list[Violation]:
    """`from X import _name` (a leading underscore, dunders aside) in every file under roots; with package_dir, also
    the same name reached through a module of that package bound by an import (`import kws_zoo.x as m; m._name`)."""
    modules = package_modules(package_dir) if package_dir else {}
    out = []
    for root in roots:
        for path in python_files(root):
            rel = str(path.relative_to(base))
            tree = parse(path)
            aliases: dict[str, str] = {}  # local name -> package module it is bound to
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom):
                    for alias in node.names:
                        if _private(alias.name):
                            module = "." * node.level + (node.module or "")
                            out.append(Violation(rel, node.lineno, ast.unparse(node),
                                                 f"imports {module}'s private name {alias.name}"))
                        elif not node.level and f"{node.module}.{alias.name}" in modules:
                            aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.asname and alias.name in modules:
                            aliases[alias.asname] = alias.name
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and _private(node.attr):
                    dotted = ast.unparse(node.value)
                    module = aliases.get(dotted, dotted if dotted in modules else None)
                    if module:
                        out.append(Violation(rel, node.lineno, ast.unparse(node),
                                             f"uses {module}'s private name {node.attr}"))
    return sorted(out, key=lambda v: (v.path, v.line))


def main_and_argparse_violations(package_dir: Path) -> list[Violation]:
    """`if __name__ == "__main__"` anywhere, `__main__.py` modules, argparse outside cli.py."""
    out = []
    for path in python_files(package_dir):
        rel = str(path.relative_to(package_dir.parent))
        if path.name == "__main__.py":
            out.append(Violation(rel, 1, "__main__.py", "no `python -m` mains: the CLI is kws_zoo/cli.py"))
        is_cli = path == package_dir / "cli.py"
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.If) and "__name__" in ast.unparse(node.test) and "__main__" in ast.unparse(node.test):
                out.append(Violation(rel, node.lineno, ast.unparse(node.test), "no `python -m` mains"))
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if not is_cli and any(n == "argparse" or n.startswith("argparse.") for n in names):
                out.append(Violation(rel, node.lineno, ast.unparse(node), "argparse only in kws_zoo/cli.py"))
    return out


EXCEPTION_SUFFIXES = ("Error", "Exception", "Missing")


def exception_violations(package_dir: Path) -> list[Violation]:
    """Classes whose base names end in Error, Exception or Missing, defined outside core/errors.py."""
    errors_file = package_dir / "core" / "errors.py"
    out = []
    for path in python_files(package_dir):
        if path == errors_file:
            continue
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases]
                if any(b.endswith(EXCEPTION_SUFFIXES) for b in bases):
                    out.append(Violation(str(path.relative_to(package_dir.parent)), node.lineno,
                                         f"class {node.name}({', '.join(bases)})",
                                         "exceptions are defined in kws_zoo/core/errors.py only"))
    return out


# ----------------------------------------------------------------------------------------------------------------
# The rules on the real tree
# ----------------------------------------------------------------------------------------------------------------

def test_imports_only_go_downward():
    found = layer_violations(PACKAGE)
    if found:
        pytest.fail(report("imports against the stage order " + json.dumps(LEVELS), found), pytrace=False)


def test_no_import_cycles():
    found = cycle_violations(PACKAGE)
    if found:
        pytest.fail(report("module-level imports in cycles", found), pytrace=False)


def test_no_private_names_imported_across_modules():
    found = private_import_violations([PACKAGE, TESTS], REPO, PACKAGE)
    if found:
        pytest.fail(report("imports of another module's private name", found), pytrace=False)


def test_no_main_blocks_and_argparse_only_in_cli():
    found = main_and_argparse_violations(PACKAGE)
    if found:
        pytest.fail(report("mains or argparse outside kws_zoo/cli.py", found), pytrace=False)


def test_exceptions_live_in_core_errors():
    found = exception_violations(PACKAGE)
    if found:
        pytest.fail(report("exception classes outside kws_zoo/core/errors.py", found), pytrace=False)


def test_user_errors_are_the_packages_own():
    from kws_zoo.core import errors

    foreign = [cls for cls in errors.USER_ERRORS
               if not (isinstance(cls, type) and issubclass(cls, BaseException) and cls.__module__ == errors.__name__)]
    assert not foreign, f"USER_ERRORS holds classes not defined in kws_zoo/core/errors.py: {foreign}"
    assert errors.USER_ERRORS, "USER_ERRORS is empty"


def _python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter from the repository root (this checkout's kws_zoo)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env=env)


def test_device_side_imports_no_tensorflow():
    device = sorted(m for m in package_modules(PACKAGE) if m == "kws_zoo.device" or m.startswith("kws_zoo.device."))
    code = textwrap.dedent(f"""
        import importlib, json, sys
        for name in {device!r}:
            importlib.import_module(name)
        print(json.dumps(sorted(m for m in sys.modules if m.startswith("tensorflow"))))
    """)
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not loaded, f"importing {device} loads TensorFlow modules: {loaded[:10]}"


def test_device_side_runs_a_tflite_without_tensorflow(tmp_path):
    """Reading, running (TFLM and LiteRT) and writing C sources for an int8 .tflite, in a process without TensorFlow
    (the .tflite is made here, with it)."""
    import numpy as np

    from kws_zoo.core.compat import keras
    from kws_zoo.export.tflite import to_tflite_int8

    inputs = keras.Input((6, 4, 2))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(keras.layers.Conv2D(4, 3)(inputs))))
    rep = np.random.default_rng(0).standard_normal((16, 6, 4, 2)).astype(np.float32)
    (tmp_path / "m.tflite").write_bytes(to_tflite_int8(model, rep, num_samples=16))
    np.save(tmp_path / "x.npy", rep[:2])
    code = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        from kws_zoo.device.c_array import write_c_array
        from kws_zoo.device.flatbuffer import quant_params, tflite_ops
        from kws_zoo.device.op_resolver import write_op_resolver
        from kws_zoo.device.runtime import LiteRtModel, TflmModel
        data = open({str(tmp_path / "m.tflite")!r}, "rb").read()
        x = np.load({str(tmp_path / "x.npy")!r})
        tflm = TflmModel(data)
        shapes = [list(tflm.predict(x).shape), list(LiteRtModel(data).predict(x).shape)]
        write_c_array(data, {str(tmp_path / "c")!r}, "model", arena_bytes=tflm.arena_bytes)
        write_op_resolver(data, {str(tmp_path / "c")!r}, "model")
        print(json.dumps({{"ops": tflite_ops(data), "quant": len(quant_params(data)), "shapes": shapes,
                          "tensorflow": sorted(m for m in sys.modules if m.startswith("tensorflow"))}}))
    """)
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "CONV_2D" in result["ops"] and result["shapes"] == [[2, 3], [2, 3]], result
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["model.cc", "model.h", "model_op_resolver.h"]
    assert not result["tensorflow"], f"the device side loaded TensorFlow: {result['tensorflow'][:10]}"


def _subcommands() -> list[str]:
    """The subcommands of kws_zoo.cli.build_parser(), or one entry naming why there are none (that case then fails
    alone instead of the whole module failing to collect)."""
    try:
        from kws_zoo.cli import build_parser

        parser = build_parser()
    except Exception as err:  # noqa: BLE001
        return [f"<build_parser() failed: {type(err).__name__}: {err}>"]
    # argparse has no public way to list subcommands: the subparsers action is the one whose choices is a dict.
    actions = [a for a in parser._actions if isinstance(getattr(a, "choices", None), dict)]
    assert len(actions) == 1, "kws-zoo has one level of subcommands"
    return sorted(actions[0].choices)


HELP_SECONDS = 1.0  # the answer, timed inside the process: import of kws_zoo.cli and main() until SystemExit
HELP_WALL_SECONDS = 3.0  # the whole process, interpreter start-up included (about 0.1 s on an idle machine)

HELP_PROBE = textwrap.dedent("""
    import json, sys, time
    t0 = time.perf_counter()
    from kws_zoo.cli import main
    t1 = time.perf_counter()
    try:
        main(sys.argv[1:])
        code = None
    except SystemExit as stop:
        code = stop.code
    t2 = time.perf_counter()
    print(json.dumps({"import": t1 - t0, "main": t2 - t1, "code": code,
                      "tensorflow": sorted(m for m in sys.modules if m.startswith("tensorflow"))}))
""")


@pytest.mark.parametrize("argv", [["--help"]] + [[name, "--help"] for name in _subcommands()],
                         ids=lambda argv: "kws-zoo " + " ".join(argv))
def test_help_answers_fast_without_tensorflow(argv, record_property):
    import time

    start = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-c", HELP_PROBE, *argv], capture_output=True, text=True, timeout=120,
                          cwd=REPO, env=env)
    wall = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    probe = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("import", "main"):
        record_property(f"{key}_seconds", probe[key])
    record_property("wall_seconds", wall)
    assert probe["code"] in (0, None), probe
    assert "usage:" in proc.stdout
    assert not probe["tensorflow"], f"kws-zoo {' '.join(argv)} imports TensorFlow: {probe['tensorflow'][:10]}"
    assert probe["main"] < HELP_SECONDS, f"main() took {probe['main']:.2f} s"
    assert probe["import"] + probe["main"] < HELP_SECONDS, \
        f"import kws_zoo.cli {probe['import']:.2f} s + main() {probe['main']:.2f} s"
    assert wall < HELP_WALL_SECONDS, f"the process took {wall:.2f} s"


def test_setup_installs_only_kws_zoo():
    from distutils.core import run_setup  # setuptools' own copy: reads setup.py's arguments without building

    cwd = os.getcwd()
    try:
        os.chdir(REPO)
        dist = run_setup(str(REPO / "setup.py"), stop_after="init")
    finally:
        os.chdir(cwd)
    packages = sorted(dist.packages or [])
    assert {p.split(".")[0] for p in packages} == {"kws_zoo"}, packages
    assert not dist.py_modules, f"top-level modules installed beside kws_zoo: {dist.py_modules}"
    # Every folder of kws_zoo that holds Python code is a package that gets installed.
    folders = sorted({module_name(p.parent / "__init__.py", PACKAGE) for p in python_files(PACKAGE)})
    assert sorted(set(folders) - set(packages)) == [], "folders of kws_zoo that are not installed (no __init__.py?)"


def test_tflm_folder_is_firmware_not_a_python_package():
    """tflm/ holds the C++ side; a Python `tflm` would read as the upstream library (and collide with it)."""
    assert not list((REPO / "tflm").rglob("__init__.py")), "tflm/ must not be a Python package"
    found = []
    for path in python_files(PACKAGE) + python_files(TESTS):
        for node in ast.walk(parse(path)):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            if any(n == "tflm" or n.startswith("tflm.") for n in names):
                found.append(Violation(str(path.relative_to(REPO)), node.lineno, ast.unparse(node),
                                       "the device side is kws_zoo.device"))
    if found:
        pytest.fail(report("imports of a top-level tflm package", found), pytrace=False)


# ----------------------------------------------------------------------------------------------------------------
# The checker on a fake package
# ----------------------------------------------------------------------------------------------------------------

def _fake_package(root: Path, files: dict[str, str]) -> Path:
    package = root / "kws_zoo"
    for rel, text in {"__init__.py": "", **files}.items():
        path = package / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(package).parents:  # every folder a package
            (package / parent / "__init__.py").touch()
        path.write_text(textwrap.dedent(text))
    return package


def test_checker_finds_upward_sideways_and_device_imports(tmp_path):
    package = _fake_package(tmp_path, {
        "core/files.py": "import os\n",
        "data/audio.py": "from kws_zoo.core import files\n",  # downward: fine
        "data/gsc.py": "from . import audio\nfrom .audio import x\n",  # same stage, relative: fine
        "models/registry.py": "def f():\n    from kws_zoo.workflows.run import go\n",  # upward, function-local
        "device/runtime.py": "import kws_zoo.data.audio\n",  # device imports data
        "evaluate/report.py": "from kws_zoo.train import fit\n",  # sideways at level 5
        "train.py": "from kws_zoo.models import registry\n",  # downward: fine
        "workflows/run.py": "from kws_zoo import cli\n",  # upward: cli is 7
        "cli.py": "from kws_zoo.workflows.run import go\n",
        "reparam.py": "from kws_zoo.export.fold import fold\n",  # thin re-export: the export stage
        "export/fold.py": "",
    })
    found = {(v.path, v.line): v.why for v in layer_violations(package)}
    assert set(found) == {("kws_zoo/models/registry.py", 2), ("kws_zoo/device/runtime.py", 1),
                          ("kws_zoo/evaluate/report.py", 1), ("kws_zoo/workflows/run.py", 1)}, found
    assert found[("kws_zoo/models/registry.py", 2)].startswith("upward: models (level 2) imports workflows")
    assert "device/ imports only core/" in found[("kws_zoo/device/runtime.py", 1)]
    assert found[("kws_zoo/evaluate/report.py", 1)].startswith("sideways")


def test_checker_finds_cycles_through_module_level_imports_only(tmp_path):
    package = _fake_package(tmp_path, {
        "data/a.py": "from kws_zoo.data import b\n",
        "data/b.py": "import kws_zoo.data.c as c\n",
        "data/c.py": "from .a import thing\n",  # closes a -> b -> c -> a
        "data/d.py": "from kws_zoo.data import e\n",
        "data/e.py": "def late():\n    from kws_zoo.data import d\n",  # function-local: no cycle
    })
    found = cycles(package)
    assert [sorted({i.source for i in inner}) for inner in found] == [["kws_zoo.data.a", "kws_zoo.data.b",
                                                                        "kws_zoo.data.c"]]
    assert len(cycle_violations(package)) == 3


def test_checker_finds_private_imports(tmp_path):
    package = _fake_package(tmp_path, {
        "core/files.py": "from os import path\nfrom kws_zoo import __version__\n",  # public and dunder: fine
        "data/audio.py": "from kws_zoo.core.files import _atomic, public\n",
        "data/gsc.py": "def f():\n    from .audio import _decode\n",
        "data/folder.py": "import kws_zoo.core.files as f\nimport kws_zoo.data.audio\nfrom kws_zoo.data import gsc\n"
                          "f._atomic(kws_zoo.data.audio._decode, gsc._x, f.public, self._own)\n",
    })
    found = private_import_violations([package], tmp_path, package)
    assert [(v.path, v.line) for v in found] == [("kws_zoo/data/audio.py", 1), ("kws_zoo/data/folder.py", 4),
                                                  ("kws_zoo/data/folder.py", 4), ("kws_zoo/data/folder.py", 4),
                                                  ("kws_zoo/data/gsc.py", 2)], found
    assert "_atomic" in found[0].why and "_decode" in found[-1].why
    assert sorted(v.what for v in found[1:4]) == ["f._atomic", "gsc._x", "kws_zoo.data.audio._decode"]


def test_checker_finds_mains_argparse_and_stray_exceptions(tmp_path):
    package = _fake_package(tmp_path, {
        "cli.py": "import argparse\n",  # allowed here
        "train.py": "import argparse\nif __name__ == '__main__':\n    pass\n",
        "core/errors.py": "class KwsZooError(Exception):\n    pass\n",
        "data/audio.py": "from kws_zoo.core import errors\nclass BadWav(errors.KwsZooError):\n    pass\n",
        "__main__.py": "",
    })
    mains = {(v.path, v.line) for v in main_and_argparse_violations(package)}
    assert mains == {("kws_zoo/train.py", 1), ("kws_zoo/train.py", 2), ("kws_zoo/__main__.py", 1)}
    assert [(v.path, v.line) for v in exception_violations(package)] == [("kws_zoo/data/audio.py", 2)]
