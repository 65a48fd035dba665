from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from apps.ai import minilm


@pytest.fixture(scope="module")
def model() -> minilm.MiniLM:
    return minilm.MiniLM(minilm.model_dir())


# Ids from the reference tokenizer (Hugging Face `tokenizers` with the model's tokenizer.json).
@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("Where's my parcel?!", [101, 2073, 1005, 1055, 2026, 20463, 1029, 999, 102]),
        ("Café déjà vu naïve façade", [101, 7668, 2139, 3900, 24728, 15743, 8508, 102]),
        ("東京 refund 😡🙏", [101, 1879, 1755, 25416, 8630, 100, 102]),
        ("unbelievably slow transfers", [101, 4895, 8671, 2666, 3567, 6321, 4030, 15210, 102]),
        ("I'm\twaiting\u200b since 3pm", [101, 1045, 1005, 1049, 3403, 2144, 1017, 9737, 102]),
    ],
)
def test_tokenizer_matches_the_reference(model: minilm.MiniLM, text: str, ids: list[int]) -> None:
    assert model.tokenizer.encode(text, max_length=model.max_length) == ids


def test_long_input_is_truncated(model: minilm.MiniLM) -> None:
    ids = model.tokenizer.encode("refund " * 1000, max_length=model.max_length)
    assert len(ids) == model.max_length == 256
    assert ids[0] == 101 and ids[-1] == 102
    assert model.tokenizer.word_ids("x" * 101) == [100]  # longer than BERT's word limit: [UNK]


def test_embeddings_match_the_published_similarities(model: minilm.MiniLM) -> None:
    """The model card's example: 0.6660 and 0.1046 (sentence-transformers, PyTorch)."""
    weather, sunny, stadium = (
        model.embed(text)
        for text in ("The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium.")
    )
    assert weather.dtype == np.float32 and weather.shape == (minilm.DIM,)
    assert float(np.linalg.norm(weather)) == pytest.approx(1.0, abs=1e-5)
    assert float(weather @ sunny) == pytest.approx(0.6660, abs=2e-4)
    assert float(weather @ stadium) == pytest.approx(0.1046, abs=2e-4)


def test_embed_english_caches_rows() -> None:
    minilm.cache_clear()
    first = minilm.embed_english(["my card has not arrived", "hello"])
    again = minilm.embed_english(["hello", "my card has not arrived"])
    assert first.shape == (2, minilm.DIM)
    np.testing.assert_array_equal(first[::-1], again)


def _safetensors_write(path: Path, tensors: dict[str, np.ndarray]) -> None:
    header: dict[str, object] = {}
    body = b""
    for name, array in tensors.items():
        raw = array.astype(array.dtype.newbyteorder("<")).tobytes()
        dtype = {"float32": "F32", "int64": "I64"}[array.dtype.name]
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [len(body), len(body) + len(raw)]}
        body += raw
    encoded = json.dumps(header).encode()
    path.write_bytes(len(encoded).to_bytes(8, "little") + encoded + body)


def test_safetensors_read_and_checksum(tmp_path: Path) -> None:
    path = tmp_path / "tiny.safetensors"
    weights = np.arange(6, dtype=np.float32).reshape(2, 3)
    _safetensors_write(path, {"w": weights, "ids": np.array([7, 8], dtype=np.int64)})
    read = minilm.safetensors_read(path)
    np.testing.assert_array_equal(read["w"], weights)
    np.testing.assert_array_equal(read["ids"], [7, 8])
    with pytest.raises(minilm.EncoderUnavailable, match="sha256"):
        minilm.safetensors_read(path, sha256=minilm.WEIGHTS_SHA256)
