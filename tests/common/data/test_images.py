import io
import logging

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from hybridvision.common.data import images as images_module
from hybridvision.common.data.images import (
    IMAGE_EXTENSIONS,
    decode_image,
    decode_image_bytes,
    drop_unreadable,
    log_skipped,
    validate_images,
)

SIZE = (12, 16)  # height, width


def pixels(mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    shape = {"RGB": (*SIZE, 3), "RGBA": (*SIZE, 4), "L": SIZE}[mode]
    return rng.integers(0, 256, shape, dtype=np.uint8)


def encode(array, fmt, **save_kwargs):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **save_kwargs)
    return buffer.getvalue()


def write(path, data):
    path.write_bytes(data)
    return str(path)


def test_lossless_formats_decode_exactly(tmp_path):
    rgb = pixels()
    for fmt in ("PNG", "BMP", "WEBP"):
        path = write(
            tmp_path / f"a.{fmt.lower()}",
            encode(rgb, fmt, **({"lossless": True} if fmt == "WEBP" else {})),
        )
        got = decode_image(path, SIZE).numpy()
        assert got.dtype == np.float32 and got.shape == (*SIZE, 3)
        np.testing.assert_array_equal(got, rgb, err_msg=fmt)


def test_rgba_png_drops_alpha_and_grayscale_repeats(tmp_path):
    rgba = pixels("RGBA")
    got = decode_image(write(tmp_path / "rgba.png", encode(rgba, "PNG")), SIZE).numpy()
    np.testing.assert_array_equal(got, rgba[..., :3])
    gray = pixels("L")
    got = decode_image(write(tmp_path / "gray.png", encode(gray, "PNG")), SIZE).numpy()
    np.testing.assert_array_equal(got, np.repeat(gray[..., None], 3, axis=-1))


def test_jpeg_gif_first_frame_and_bytes(tmp_path):
    jpeg = encode(pixels(), "JPEG", quality=95)
    got = decode_image(write(tmp_path / "a.jpg", jpeg), SIZE).numpy()
    reference = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), dtype=np.float32)
    assert np.abs(got - reference).mean() < 1.5
    np.testing.assert_array_equal(decode_image(jpeg, SIZE).numpy(), got)
    frames = [Image.fromarray(np.full((*SIZE, 3), v, np.uint8)) for v in (200, 30)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    got = decode_image(write(tmp_path / "anim.gif", buffer.getvalue()), SIZE).numpy()
    assert got.shape == (*SIZE, 3) and np.abs(got - 200).max() <= 2


def test_resize_grayscale_output_and_tf_data_map(tmp_path):
    path = write(tmp_path / "a.png", encode(pixels(), "PNG"))
    resized = decode_image(path, (6, 8)).numpy()
    assert resized.shape == (6, 8, 3) and 0 <= resized.min() and resized.max() <= 255
    assert decode_image(path, (6, 8), channels=1).shape == (6, 8, 1)
    dataset = tf.data.Dataset.from_tensor_slices([path, path]).map(
        lambda p: decode_image(p, (6, 8))
    )
    assert [tuple(x.shape) for x in dataset] == [(6, 8, 3)] * 2
    from_bytes = tf.data.Dataset.from_tensor_slices([encode(pixels(), "PNG")]).map(
        lambda b: decode_image_bytes(b, (6, 8))
    )
    np.testing.assert_allclose(next(iter(from_bytes)).numpy(), resized)


def test_bad_decode_arguments(tmp_path):
    path = write(tmp_path / "a.png", encode(pixels(), "PNG"))
    with pytest.raises(ValueError, match="image_size"):
        decode_image(path, (8,))
    with pytest.raises(ValueError, match="channels"):
        decode_image(path, SIZE, channels=4)


def test_validate_images_finds_every_kind_of_bad_file(tmp_path):
    jpeg = encode(pixels(), "JPEG")
    good = [
        write(tmp_path / "ok.jpg", jpeg),
        write(tmp_path / "ok.png", encode(pixels(), "PNG")),
        write(tmp_path / "ok.gif", encode(pixels(), "GIF")),
    ]
    empty = write(tmp_path / "empty.jpg", b"")
    truncated = write(tmp_path / "truncated.jpg", jpeg[: len(jpeg) // 2])
    garbage = write(tmp_path / "garbage.png", b"not an image at all" * 4)
    missing = str(tmp_path / "missing.jpg")
    ok, bad = validate_images([good[0], empty, good[1], truncated, garbage, missing, good[2]])
    assert ok == good
    reasons = dict(bad)
    assert list(reasons) == [empty, truncated, garbage, missing]
    assert reasons[empty] == "empty file (0 bytes)"
    assert reasons[missing] == "file not found"
    assert reasons[truncated].startswith("cannot decode") and "JPEG" in reasons[truncated]
    assert reasons[garbage].startswith("cannot decode")


def test_validation_cache_is_keyed_by_mtime_and_size(tmp_path, monkeypatch):
    jpeg = encode(pixels(), "JPEG")
    path = write(tmp_path / "a.jpg", jpeg)
    assert validate_images([path]) == ([path], [])
    calls = []
    monkeypatch.setattr(images_module, "_check_decodes", lambda c: calls.append(c) or tf.shape(c))
    assert validate_images([path]) == ([path], [])
    assert calls == []  # answered from the cache
    monkeypatch.undo()
    write(tmp_path / "a.jpg", jpeg[: len(jpeg) // 3])  # same path, new size
    ok, bad = validate_images([path])
    assert ok == [] and bad[0][0] == path
    monkeypatch.setattr(images_module, "_check_decodes", lambda c: calls.append(c) or tf.shape(c))
    assert validate_images([path]) == ([], bad) and calls == []  # a failure is answered from the cache too


def test_drop_unreadable_keeps_readable_rows_in_order_and_logs_the_rest(tmp_path, caplog):
    import pandas as pd

    jpeg = encode(pixels(), "JPEG")
    a = write(tmp_path / "a.jpg", jpeg)
    broken = write(tmp_path / "broken.jpg", jpeg[:20])
    b = write(tmp_path / "b.jpg", jpeg)
    table = pd.DataFrame({"file": [a, broken, b], "label": [0, 1, 2]})
    with caplog.at_level(logging.WARNING, logger="hybridvision"):
        kept = drop_unreadable(table, column="file", what="faces")
    assert kept["file"].tolist() == [a, b] and kept["label"].tolist() == [0, 2]
    assert kept.index.tolist() == [0, 1]
    assert "skipped 1 unreadable faces" in caplog.text and "broken.jpg" in caplog.text
    assert drop_unreadable(kept, column="file") is kept  # nothing to drop: the same table


def test_log_skipped_names_count_and_first_paths(caplog):
    bad = [(f"/data/img{i}.jpg", "empty file (0 bytes)") for i in range(7)]
    with caplog.at_level(logging.WARNING, logger="hybridvision"):
        log_skipped(bad)
    (record,) = caplog.records
    assert record.name == "hybridvision"
    assert "skipped 7 unreadable images" in record.message
    assert "/data/img0.jpg" in record.message and "and 2 more" in record.message
    caplog.clear()
    log_skipped([])
    assert caplog.records == []


def test_image_extensions_cover_the_decoded_formats():
    assert {".jpg", ".jpeg", ".png", ".bmp", ".gif"} <= set(IMAGE_EXTENSIONS)
    assert all(ext == ext.lower() and ext.startswith(".") for ext in IMAGE_EXTENSIONS)


def test_a_large_check_is_kept_on_disk_for_the_next_run(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDVISION_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(images_module, "DISK_CACHE_MIN", 2)
    jpeg = encode(pixels(), "JPEG")
    good = write(tmp_path / "ok.jpg", jpeg)
    broken = write(tmp_path / "broken.jpg", jpeg[: len(jpeg) // 2])
    first = validate_images([good, broken])
    assert first[0] == [good] and first[1][0][0] == broken
    assert len(list((tmp_path / "cache" / "decode_check").glob("*.tsv"))) == 1
    monkeypatch.setattr(images_module, "_VALIDATION_CACHE", {})  # a new run: nothing in memory
    calls = []
    monkeypatch.setattr(images_module, "_check_decodes", lambda c: calls.append(c) or tf.shape(c))
    assert validate_images([good, broken]) == first
    assert calls == []  # answered from the disk cache, with the reason of the broken file
    write(tmp_path / "broken.jpg", jpeg)  # repaired: a new size, checked again
    monkeypatch.setattr(images_module, "_VALIDATION_CACHE", {})
    assert validate_images([good, broken]) == ([good, broken], [])
    assert len(calls) == 1


def test_small_checks_and_off_stay_in_memory(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDVISION_CACHE_DIR", "off")
    assert images_module.decode_check_cache_dir() is None
    monkeypatch.setenv("HYBRIDVISION_CACHE_DIR", str(tmp_path / "cache"))
    path = write(tmp_path / "a.jpg", encode(pixels(), "JPEG"))
    assert validate_images([path]) == ([path], [])
    assert not (tmp_path / "cache").exists()
