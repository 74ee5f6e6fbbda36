"""``tools/train.py`` with mmcv's CUDA deformable attention compiled on the
spot (``mmcv_cuda_attn.install``), for a machine whose mmcv has no ops:

    python benchmarks/gpu/train_with_kernel.py CONFIG [train.py args]
"""
import os.path as osp
import runpy
import sys

HERE = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, HERE)

if __name__ == '__main__':
    import importlib.util
    if importlib.util.find_spec('mmcv._ext') is None:
        import mmcv_cuda_attn
        mmcv_cuda_attn.install()
    train = osp.join(osp.dirname(osp.dirname(HERE)), 'tools', 'train.py')
    sys.argv = [train] + sys.argv[1:]
    runpy.run_path(train, run_name='__main__')
