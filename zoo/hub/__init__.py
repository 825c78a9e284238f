"""The model hub: published weights with model cards, fetched, verified and cached.

A hub is an `index.json` of model cards (`card.py`, every field checked) beside the
weight files, on any static host: a local folder, `file://`, `http(s)://` or
`hf://org/repo` (`index.py`: several hubs searched in order; `urls.py`, `hf.py`). Files
are downloaded atomically under a lock, verified against the card's sha256 and
re-verified on every load, an archive's extracted files too (`fetch.py`, `cache.py`,
`archive.py`); `ZOO_OFFLINE=1` or `HF_HUB_OFFLINE=1` uses the cache only;
`cache_scan.py` lists and prunes it. Weights are safetensors of the model's variables (`zoo.io.weights`), found
by `pretrained.py`, turned into models by `zoo.restore` and written by `publish.py`.
One hub ships inside the package (`embedded/`), so `--pretrained` works on a fresh
install without network. The hub sits beside the harness: neither imports the other.

Importing this package (and `zoo pull`, `zoo hub list`) loads no JAX.
"""
