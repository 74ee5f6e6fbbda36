"""CPU training keeps freed memory for reuse (mqformer.engine.cpu_malloc):
a step's large tensors, freed and allocated again, take no new page faults;
``env_cfg.malloc_cfg=None`` keeps glibc's defaults."""
import subprocess
import sys

import pytest
from mmengine.config import Config

from mqformer.engine import cpu_malloc

# a training step in miniature: tensors of 1-48 MB (a matching cost, a
# layer's activations) allocated, touched and freed, step after step; prints
# the page faults of the last 5 steps
STEPS = '''
import importlib.util, resource, sys, torch
spec = importlib.util.spec_from_file_location('cpu_malloc', sys.argv[2])
cpu_malloc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cpu_malloc)  # without mqformer's registrations
if sys.argv[1] == 'retain':
    assert cpu_malloc.retain_freed_memory()
def step():
    keep = [torch.ones(int(mb * 2**18)) for mb in (48, 20, 20, 6, 1)]
    return sum(float(t[-1]) for t in keep)
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
'''


def faults(mode: str) -> int:
    out = subprocess.run([sys.executable, '-c', STEPS, mode,
                          cpu_malloc.__file__], check=True,
                         capture_output=True, text=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(cpu_malloc._libc() is None, reason='needs glibc')
def test_retained_memory_takes_no_page_faults_step_after_step():
    stock, retained = faults('stock'), faults('retain')
    # glibc's defaults map the 48 MB tensor afresh every step and trim the
    # heap after the others: every 4 KiB page faults again (24k per step)
    assert stock > 5 * 12_000
    assert retained < stock / 8


def test_malloc_cfg_none_keeps_glibc_defaults(monkeypatch):
    calls = []
    monkeypatch.setattr(cpu_malloc, 'retain_freed_memory',
                        lambda **kw: calls.append(kw) or True)
    monkeypatch.setattr(cpu_malloc.torch.cuda, 'is_available', lambda: False)
    assert not cpu_malloc.setup_cpu_malloc(
        Config(dict(env_cfg=dict(malloc_cfg=None))))
    assert cpu_malloc.setup_cpu_malloc(Config(dict()))  # absent: defaults
    assert cpu_malloc.setup_cpu_malloc(Config(dict(env_cfg=dict(
        malloc_cfg=dict(trim_threshold_mb=512)))))
    assert calls == [{}, dict(trim_threshold_mb=512)]
    # GPU training leaves the host allocator alone
    monkeypatch.setattr(cpu_malloc.torch.cuda, 'is_available', lambda: True)
    assert not cpu_malloc.setup_cpu_malloc(Config(dict()))
    assert len(calls) == 2


@pytest.mark.parametrize('kw', [dict(mmap_threshold_mb=0),
                                dict(trim_threshold_mb=4096)])
def test_thresholds_out_of_mallopt_range_are_refused(kw):
    with pytest.raises(ValueError, match='malloc_cfg'):
        cpu_malloc.retain_freed_memory(**kw)
