"""Image loading: decompression bombs, EXIF orientation, mode conversion, corrupt/missing files, pass-through."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from data_prep.errors import RowError
from data_prep.images import encode_image, fit_within, load_image, prepare_image, to_rgb


def _bytes(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (12_000, 12_000)).save(path)  # 144 MP of zeros: a few KB on disk
    assert path.stat().st_size < 100_000
    with pytest.raises(RowError, match=r"row 'r1', field 'images\[0\]': .*decompression bomb") as err:
        load_image(str(path), row_id="r1")
    assert err.value.reason == "image too large"
    with pytest.raises(RowError, match="decompression bomb"):
        load_image(str(path), row_id="r1", max_pixels=10_000)


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 10, 20))  # blue strip on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = _bytes(image, "JPEG", exif=exif, quality=95)
    upright = load_image(data, row_id="r")
    assert upright.size == (20, 40)
    r, g, b = upright.getpixel((10, 3))  # the blue strip is now on top
    assert b > 200 and r < 60
    prepared = prepare_image(data, row_id="r")
    assert prepared.reencoded and (prepared.width, prepared.height) == (20, 40)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "CMYK", "L", "I;16"])
def test_modes_become_rgb(mode):
    if mode == "RGBA":
        image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
        expected = (255, 255, 255)  # composited on white, not black
    elif mode == "LA":
        image, expected = Image.new("LA", (4, 4), (0, 0)), (255, 255, 255)
    elif mode == "P":
        image = Image.new("P", (4, 4), 1)
        image.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
        expected = (0, 255, 0)
    elif mode == "CMYK":
        image, expected = Image.new("CMYK", (4, 4), (0, 255, 255, 0)), (255, 0, 0)
    elif mode == "L":
        image, expected = Image.new("L", (4, 4), 128), (128, 128, 128)
    else:
        image, expected = Image.new("I;16", (4, 4), 65535), (255, 255, 255)
    out = load_image(_bytes(image, "TIFF" if mode in ("CMYK", "I;16") else "PNG"), row_id="r")
    assert out.mode == "RGB" and out.getpixel((0, 0)) == expected


def test_transparent_palette_is_composited_on_white():
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0] * 256)
    image.info["transparency"] = 0
    assert to_rgb(image).getpixel((0, 0)) == (255, 255, 255)


def test_errors_name_the_image_file_never_a_buffer(tmp_path):
    """A corrupt or truncated file is named by its path (Pillow alone says "<_io.BytesIO object at 0x…>")."""
    garbage, truncated = tmp_path / "garbage.png", tmp_path / "cut.png"
    garbage.write_bytes(b"not an image at all")
    truncated.write_bytes(_bytes(Image.new("RGB", (64, 64), (1, 2, 3)))[:100])
    for path in (garbage, truncated):
        for fn in (load_image, prepare_image):
            with pytest.raises(RowError) as err:
                fn(str(path), row_id="x")
            assert str(path) in str(err.value) and "BytesIO" not in str(err.value), str(err.value)
            assert err.value.reason == "corrupt image"
    with pytest.raises(RowError, match=r"image bytes \(19 bytes\)") as err:
        load_image(b"not an image at all", row_id="x")
    assert "BytesIO" not in str(err.value)
    with pytest.raises(RowError, match="garbage.png"):
        load_image({"bytes": garbage.read_bytes(), "path": "garbage.png"}, row_id="x")


def test_corrupt_and_missing_images_name_row_and_field(tmp_path):
    truncated = _bytes(Image.new("RGB", (64, 64), (1, 2, 3)))[:60]
    with pytest.raises(RowError, match=r"row 'x', field 'image': cannot") as err:
        load_image(truncated, row_id="x", field="image")
    assert err.value.reason == "corrupt image"
    with pytest.raises(RowError, match="cannot read image") as err:
        load_image(b"not an image at all", row_id="x")
    assert err.value.reason == "corrupt image"
    with pytest.raises(RowError, match=r"image file not found: .*nope\.png") as err:
        load_image("nope.png", row_id="x", root=tmp_path)
    assert err.value.reason == "missing image"


def test_prepare_keeps_good_bytes_and_resizes_big_ones(tmp_path):
    data = _bytes(Image.new("RGB", (50, 40), (9, 9, 9)))
    kept = prepare_image(data, row_id="r")
    assert kept.data == data and not kept.reencoded and not kept.resized
    shrunk = prepare_image(data, row_id="r", max_side=25)
    assert shrunk.resized and Image.open(io.BytesIO(shrunk.data)).size == (25, 20)
    rgba = prepare_image(_bytes(Image.new("RGBA", (5, 5))), row_id="r", fmt="JPEG")
    assert rgba.reencoded and Image.open(io.BytesIO(rgba.data)).format == "JPEG"


def test_fit_within_and_encode():
    image = Image.new("RGB", (300, 100))
    assert fit_within(image, 150, 150).size == (150, 50)
    assert fit_within(image, 1000, 1000) is image
    assert encode_image(image, "png")[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="PNG or JPEG"):
        encode_image(image, "gif")
