// mmcv 2.1.0's CUDA sources include <THC/THCAtomics.cuh>, which current
// PyTorch no longer ships; its atomicAdd overloads now live in ATen.
#pragma once
#include <ATen/cuda/Atomic.cuh>
