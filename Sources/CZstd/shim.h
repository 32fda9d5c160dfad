// The system zstd (Debian: libzstd-dev), used for pack blobs.
#include <zstd.h>
