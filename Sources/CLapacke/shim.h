// LAPACKE for SVDs and OpenBLAS's CBLAS for prefill GEMMs (Debian: liblapacke-dev, libopenblas-dev).
#include <lapacke.h>
#include <cblas.h>
