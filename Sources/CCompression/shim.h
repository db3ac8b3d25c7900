#ifndef FLEET_IMAGES_CCOMPRESSION_SHIM_H
#define FLEET_IMAGES_CCOMPRESSION_SHIM_H
/* The system's liblzma (xz) and libzstd: compressed image outputs written in the signing pass. */
#include <lzma.h>
#include <zstd.h>

/* LZMA_STREAM_INIT is a compound literal macro: Swift does not import it. */
static inline lzma_stream fleet_lzma_stream_init(void) {
    lzma_stream stream = LZMA_STREAM_INIT;
    return stream;
}
#endif
