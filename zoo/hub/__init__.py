"""The model hub: published weights with model cards, fetched, verified and cached.

A hub is an `index.json` of model cards (`card.py`) beside the weight files, on any
static host: a local folder, `file://`, `http(s)://` or `hf://org/repo` (`index.py`,
`urls.py`). Files are downloaded atomically under a lock, verified against the card's
sha256 and re-verified on every load (`fetch.py`, `cache.py`); `ZOO_OFFLINE=1` uses the
cache only. Weights are safetensors of the model's variables (`zoo.io.weights`), found
by `pretrained.py`, turned into models by `zoo.restore` and written by `publish.py`.
One hub ships inside the package (`embedded/`), so `--pretrained` works on a fresh
install without network. The hub sits beside the harness: neither imports the other.

Importing this package (and `zoo pull`, `zoo hub list`) loads no JAX.
"""
