"""Bytes of the tensors autograd saves for backward (PyTorch's tape)."""

import torch


class Tape:
    """Context manager: counts each distinct storage saved for backward once."""

    def __init__(self):
        self.bytes = 0
        self._seen = set()
        self._ctx = None

    def _pack(self, t):
        try:
            st = t.untyped_storage()
            key = (st.data_ptr(), st.nbytes())
            if key not in self._seen:
                self._seen.add(key)
                self.bytes += st.nbytes()
        except Exception:  # noqa: BLE001
            pass
        return t

    def __enter__(self):
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)
        return False
