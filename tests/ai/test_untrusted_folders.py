"""Model folders are untrusted input: a manifest names no code to import, no file outside its folder, and a
TorchScript model (code that runs with the user's permissions) runs only where the user allowed it.

The refusals are checked in fresh interpreters: nothing the manifest names gets imported (a sentinel module would
leave a file; ``this`` would print the Zen of Python), and no file outside the folder gets opened (a FIFO outside:
opening it would block until the timeout).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_models import install_runners
from learned_models import threshold_net, write_model

from ai.api import CONTAINS_CODE_NOTE, InferenceRequest, ModelError
from ai.engine import Engine
from ai.manifest import ManifestError
from ai.registry import Registry, load_model_folder
from radview_base.geometry import Geometry

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BASE = """\
id = "{id}"
name = "{id}"
version = "1"
modality = "CT"
method = "test"
outputs = ["labels"]
{runner}
[labels]
1 = "thing"
"""
LEARNED = """\
id = "{id}"
name = "{id}"
version = "1"
modality = "CT"
[labels]
1 = "thing"
[input]
patch_size = [4, 8, 8]
[network]
format = "torchscript"
file = "{file}"
"""
GRID = Geometry((6, 10, 12), (2.0, 1.0, 1.0))


def run_python(code: str, *args, pythonpath=(), timeout=90) -> subprocess.CompletedProcess:
    path = os.pathsep.join([str(ROOT), str(HERE), *map(str, pythonpath)])
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADVIEW_")}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout, env={**env, "PYTHONPATH": path})


def model_toml(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.toml").write_text(text)
    return folder


LIST_AND_LOAD = """
    import json, sys
    from ai.api import InferenceRequest, ModelError
    from ai.engine import Engine
    from ai.registry import ManifestError, Registry, load_model_folder
    import numpy as np
    from radview_base.geometry import Geometry

    models, subs = sys.argv[1], sys.argv[2:]
    reg = Registry(extra_dirs=[models], builtin=False)
    errors = {}
    for sub in subs:
        try:
            load_model_folder(sub)
            errors[sub] = None
        except ManifestError as exc:
            errors[sub] = str(exc)
    engine = Engine(Registry(extra_dirs=[], builtin=False))
    request = InferenceRequest(array=np.zeros((2, 2, 2)), grid=Geometry((2, 2, 2), (1, 1, 1)), model_id="x",
                               options={"model_folder": subs[0]})
    try:
        engine.run(request)
        engine_error = None
    except ModelError as exc:
        engine_error = str(exc)
    from dataclasses import replace
    try:  # a manifest built in code is held to the same rule
        Registry(extra_dirs=[]).load_runner_class(replace(Registry(extra_dirs=[]).get("ct-body"), runner="this:X"))
        load_error = None
    except ModelError as exc:
        load_error = str(exc)
    print(json.dumps({"ids": reg.ids(), "problems": reg.problems, "errors": errors, "engine": engine_error,
                      "load": load_error,
                      "modules": sorted(m for m in ("this", "radview_sentinel", "torch") if m in sys.modules)}))
"""


def test_a_runner_that_names_a_module_is_refused_before_anything_is_imported(tmp_path):
    marker = tmp_path / "SENTINEL_IMPORTED"
    pkgs = tmp_path / "pkgs"
    pkgs.mkdir()
    (pkgs / "radview_sentinel.py").write_text(f"open({str(marker)!r}, 'w').close()\nprint('sentinel imported')\n"
                                              "class Runner:\n    pass\n")
    models = tmp_path / "models"
    subs = [model_toml(models / name, BASE.format(id=name, runner=f'runner = "{runner}"'))
            for name, runner in (("this", "this:X"), ("system", "os:system"), ("sentinel", "radview_sentinel:Runner"),
                                 ("bare", "radview_sentinel"), ("dotted", "ai.runners.ct_models.BodyModel"))]
    out = run_python(LIST_AND_LOAD, models, *subs, pythonpath=[pkgs])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1 and "Beautiful is better" not in out.stdout + out.stderr  # `import this` prints the Zen
    report = json.loads(lines[0])
    assert report["modules"] == [] and not marker.exists()  # nothing imported: no sentinel, no `this`, not even torch
    assert report["ids"] == [] and len(report["problems"]) == len(subs)
    for sub in subs:
        (problem,) = [p for p in report["problems"] if p.startswith(f"{sub / 'model.toml'}: skipped: runner '")]
        assert "\n" not in problem
        assert "is not one of radview's runners" in problem and "cannot name other code" in problem
        assert "is not one of radview's runners" in report["errors"][str(sub)]
    assert report["engine"].startswith(f"{subs[0]}: runner 'this:X' is not one of radview's runners")
    assert report["load"].startswith("CT body outline: runner 'this:X' is not one of radview's runners")


def test_a_manifest_without_a_runner_or_with_a_non_text_runner_is_refused(tmp_path):
    a = model_toml(tmp_path / "a", BASE.format(id="a", runner=""))
    b = model_toml(tmp_path / "b", BASE.format(id="b", runner="runner = 3"))
    with pytest.raises(ManifestError, match="missing field 'runner'"):
        load_model_folder(a)
    with pytest.raises(ManifestError, match="'runner' must be str"):
        load_model_folder(b)


SCAN = """
    import json, sys
    from ai.registry import Registry
    reg = Registry(extra_dirs=[sys.argv[1]], builtin=False)
    print(json.dumps({"ids": reg.ids(), "problems": reg.problems,
                      "paths": {m.id: m.network.file for m in reg.models() if m.network}}))
"""


def test_files_outside_the_model_folder_are_refused_unopened(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    fifo = outside / "weights.pt"
    os.mkfifo(fifo)  # opening it for reading would block: a refusal must not even open it
    models = tmp_path / "models"
    cases = {
        "dotdot": ("../../outside/weights.pt", "has a '..' part"),
        "absolute": (str(fifo), "is an absolute path"),
        "link": ("model.pt", "is a symlink that leads outside the model folder"),
        "dirlink": ("sub/weights.pt", "is a symlink that leads outside the model folder"),
        "backslash": ("..\\..\\outside\\weights.pt", "has a '..' part"),
    }
    for name, (file, _) in cases.items():
        model_toml(models / name, LEARNED.format(id=name, file=file.replace("\\", "\\\\")))
    (models / "link" / "model.pt").symlink_to(fifo)
    (models / "dirlink" / "sub").symlink_to(outside, target_is_directory=True)
    params = BASE.format(id="params", runner='runner = "nnunet"') + '[parameters]\nfolder = "../../outside"\n'
    model_toml(models / "params", params)
    cases["params"] = ("../../outside", "parameters.folder '../../outside' has a '..' part")
    os.mkfifo(models / "fifo.toml")  # a manifest that is a FIFO is not opened either
    good = model_toml(models / "good", LEARNED.format(id="good", file="model.pt"))  # a link that stays inside
    (good / "weights").mkdir()
    torch.jit.script(torch.nn.Conv3d(1, 2, 1)).save(str(good / "weights" / "real.pt"))
    (good / "model.pt").symlink_to(good / "weights" / "real.pt")

    out = run_python(SCAN, models, timeout=60)  # a blocked open would run into the timeout
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["ids"] == ["good"] and report["paths"]["good"] == str((good / "weights" / "real.pt").resolve())
    problems = {Path(p.split(": skipped: ")[0]).parent.name if "model.toml" in p else Path(p.split(":")[0]).name: p
                for p in report["problems"]}
    assert set(problems) == {*cases, "fifo.toml"}
    assert "not a regular file" in problems["fifo.toml"]
    for name, (file, reason) in cases.items():
        problem = problems[name]
        assert problem.startswith(str(models / name / "model.toml")) and reason in problem and "\n" not in problem
        if name != "params":
            assert f"network.file '{file}'" in problem


def test_nnunet_folder_files_linked_outside_are_refused_before_reading(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "dataset.json").write_text("this is not JSON: reading it would say so")
    (outside / "checkpoint_final.pth").write_bytes(b"not a checkpoint")
    models = tmp_path / "models"
    for trainer, linked in (("A", "dataset.json"), ("B", "fold_0/checkpoint_final.pth")):
        folder = models / f"{trainer}__nnUNetPlans__3d_fullres"
        (folder / "fold_0").mkdir(parents=True)
        for name in ("dataset.json", "plans.json", "fold_0/checkpoint_final.pth"):
            target = folder / name
            if name == linked:
                target.symlink_to(outside / Path(name).name)
            else:
                target.write_text("{}")
    reg = Registry(extra_dirs=[models], builtin=False)
    assert reg.ids() == [] and len(reg.problems) == 2
    a, b = sorted(reg.problems)
    assert "file 'dataset.json' is a symlink that leads outside the model folder" in a and "JSON" not in a
    assert "file 'fold_0/checkpoint_final.pth' is a symlink that leads outside the model folder" in b


def test_the_nnunet_runner_refuses_a_checkpoint_linked_outside_after_listing(tmp_path):
    pytest.importorskip("nnunetv2")
    import tiny_nnunet as tiny

    from ai.nnunet_folder import manifest_from_folder
    from ai.runners.nnunet import NnUNetModel

    folder = tiny.write_folder(tmp_path / "results")
    manifest = manifest_from_folder(folder)
    ckpt = folder / "fold_0" / "checkpoint_final.pth"
    ckpt.rename(tmp_path / "elsewhere.pth")
    ckpt.symlink_to(tmp_path / "elsewhere.pth")
    with pytest.raises(ModelError, match="is a symlink that leads outside the model folder"):
        NnUNetModel(manifest, "cpu")


# --- TorchScript: code that runs with the user's permissions ---------------------------------------------------
def _request(model_id: str, allow=()) -> InferenceRequest:
    return InferenceRequest(array=np.zeros(GRID.shape_zyx, np.float32), grid=GRID, model_id=model_id, device="cpu",
                            allow_code_in=frozenset(map(str, allow)))


def test_torchscript_is_listed_as_code_and_runs_only_where_the_user_allowed_it(tmp_path):
    ts = write_model(tmp_path, "ts", threshold_net(), "torchscript", patch=(4, 8, 8))
    st = write_model(tmp_path, "st", threshold_net(), "safetensors", patch=(4, 8, 8),
                     args={"in_channels": 1, "out_channels": 2, "features": [2], "kernel_size": 1, "norm": "none"})
    engine = Engine(Registry(extra_dirs=[tmp_path], builtin=False))
    m = engine.registry.get("ts")
    assert m.contains_code and m.as_dict()["contains_code"] is True and m.folder == str(ts)
    assert not engine.registry.get("st").contains_code
    for allow in ((), (st,), (tmp_path,)):  # not allowed, another folder, the parent folder
        with pytest.raises(ModelError) as err:
            engine.run(_request("ts", allow))
        text = str(err.value)
        assert CONTAINS_CODE_NOTE in text and str(ts) in text and "--allow-torchscript" in text and "\n" not in text
    assert engine.cached_models() == []  # refused before the runner (and its TorchScript) was loaded
    assert engine.run(_request("st")).labels.shape == GRID.shape_zyx  # safetensors: weights only, no consent
    assert engine.run(_request("ts", [ts])).labels.shape == GRID.shape_zyx
    assert engine.run(_request("ts", [ts / "model.toml"])).labels is not None  # the manifest file names it too
    with pytest.raises(ModelError, match="contains code"):  # a cached runner is no way around the consent
        engine.run(_request("ts"))


def test_cli_refuses_torchscript_without_the_flag_in_one_line(tmp_path, capsys):
    from viewer.cli.main import main

    folder = write_model(tmp_path / "models", "ts", threshold_net(), "torchscript")
    image = tmp_path / "ct.nii.gz"
    image.write_bytes(b"")  # exists; the refusal comes before it is read
    assert main(["ai", "run", str(image), "--model-dir", str(folder), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and CONTAINS_CODE_NOTE in err and "--allow-torchscript" in err
    assert not (tmp_path / "out").exists()


def test_the_engine_process_passes_the_consent(tmp_path):
    from ai.engine_process import EngineClient

    folder = write_model(tmp_path, "ts", threshold_net(), "torchscript", patch=(4, 8, 8))
    refused = InferenceRequest(array=np.zeros(GRID.shape_zyx, np.float32), grid=GRID, model_id="ts", device="cpu",
                               options={"model_folder": str(folder)})
    with EngineClient() as client:
        with pytest.raises(ModelError, match="contains code"):
            client.run(refused)
        result = client.run(InferenceRequest(array=refused.array, grid=GRID, model_id="ts", device="cpu",
                                             options=refused.options, allow_code_in=frozenset({str(folder)})))
    assert result.labels.shape == GRID.shape_zyx


# --- runners from installed packages ------------------------------------------------------------------------------
ENTRY_POINTS = """
    import json, sys
    from ai import runner_names
    from ai.registry import Registry
    reg = Registry(extra_dirs=[sys.argv[1]], builtin=False)
    listed = {"ids": reg.ids(), "problems": [p.split(": skipped: ")[1] for p in reg.problems],
              "imported_when_listed": "radview_ep_runner" in sys.modules,
              "ct_body": runner_names.target("ct-body")}
    cls = reg.load_runner_class(reg.get("ep"))
    print(json.dumps({**listed, "class": f"{cls.__module__}.{cls.__name__}"}))
"""


def test_a_runner_comes_from_an_installed_package_entry_point(tmp_path):
    site, pkgs = tmp_path / "site", tmp_path / "pkgs"
    pkgs.mkdir()
    (pkgs / "radview_ep_runner.py").write_text("class Runner:\n    pass\n\nclass Evil:\n    pass\n")
    install_runners(site, {"ep-runner": "radview_ep_runner:Runner", "ct-body": "radview_ep_runner:Evil"},
                    "radview_ep_test")
    sys.path.remove(str(site))  # only the subprocess sees this package
    models = tmp_path / "models"
    model_toml(models / "ep", BASE.format(id="ep", runner='runner = "ep-runner"'))
    model_toml(models / "by-path", BASE.format(id="by-path", runner='runner = "radview_ep_runner:Runner"'))
    out = run_python(ENTRY_POINTS, models, pythonpath=[site, pkgs])
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["ids"] == ["ep"] and not report["imported_when_listed"]
    assert report["class"] == "radview_ep_runner.Runner"
    assert report["ct_body"] == "ai.runners.ct_models:BodyModel"  # a package cannot take over a built-in name
    (problem,) = report["problems"]
    assert problem.startswith("runner 'radview_ep_runner:Runner' is not one of radview's runners")
