"""mqformer: MQ-Former universal open-vocabulary segmentation, an OpenMMLab plugin."""
import os.path as osp

from setuptools import find_packages, setup


def get_version():
    ns = {}
    with open(osp.join(osp.dirname(__file__), 'mqformer', 'version.py')) as f:
        exec(compile(f.read(), 'version.py', 'exec'), ns)
    return ns['__version__']


def parse_requirements(fname):
    """Package names and pins from a requirements file (``-r`` and comments dropped)."""
    reqs = []
    with open(osp.join(osp.dirname(__file__), fname)) as f:
        for line in f:
            line = line.split('#')[0].strip()
            if line and not line.startswith('-'):
                reqs.append(line)
    return reqs


setup(
    name='mqformer',
    version=get_version(),
    description='MQ-Former: mixed-query universal open-vocabulary segmentation '
    'as an OpenMMLab (MMDetection 3.x) plugin',
    long_description=open('README.md').read() if osp.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'tools', 'tests', 'benchmarks')),
    python_requires='>=3.9',
    install_requires=parse_requirements('requirements/runtime.txt'),
    extras_require=dict(
        mim=parse_requirements('requirements/mminstall.txt'),
        tests=parse_requirements('requirements/tests.txt'),
        optional=parse_requirements('requirements/optional.txt'),
        panoptic=parse_requirements('requirements/panoptic.txt'),
        deploy=parse_requirements('requirements/deploy.txt'),
        web=parse_requirements('requirements/web.txt'),
    ),
    license='Apache License 2.0',
    zip_safe=False,
)
