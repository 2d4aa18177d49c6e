"""The README's Python examples run as written (except the GPU one, where no GPU is)."""
import os
import re

import pytest

from reference import backend

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCKS = re.findall(r"```python\n(.*?)```", open(os.path.join(ROOT, "README.md")).read(), flags=re.S)


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_blocks_run(code, capsys):
    if '"gpu"' in code and not backend.gpu_available():
        pytest.skip("needs a GPU")
    scope = {}
    if "prob" in code and "prob =" not in code:
        exec(BLOCKS[0], scope)  # later blocks continue the quick start
    exec(code, scope)
    out = capsys.readouterr().out
    if "oracle.replay" in code:
        assert "no divergence" in out
