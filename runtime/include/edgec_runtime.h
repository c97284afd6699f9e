/* edgec runtime definitions shared by generated code and its callers.
 * Mirrors runtime/src/{status,blob}.rs: change both together. */
#ifndef EDGEC_RUNTIME_H
#define EDGEC_RUNTIME_H

/* Return codes of NAME_run. */
#define EDGEC_OK                      0
#define EDGEC_ERR_WEIGHTS_NULL        1 /* weights is NULL, model not compiled with --embed-weights */
#define EDGEC_ERR_WEIGHTS_MAGIC       2 /* not an edgec weight blob */
#define EDGEC_ERR_WEIGHTS_VERSION     3 /* blob format version mismatch */
#define EDGEC_ERR_WEIGHTS_HASH        4 /* blob of another model or compilation */
#define EDGEC_ERR_WEIGHTS_SIZE        5 /* truncated or padded blob */
#define EDGEC_ERR_INDEX_OUT_OF_RANGE  6 /* an index input is out of range */
#define EDGEC_ERR_ARENA_ALIGN         7 /* arena not aligned to NAME_ARENA_ALIGN */
#define EDGEC_ERR_NULL_ARGUMENT       8 /* a required pointer is NULL */
#define EDGEC_ERR_DIM_OUT_OF_RANGE    9 /* NAME_run_at: a value the shape family lacks */

/* Weight blob layout: header, then 16-byte aligned tensors. */
#define EDGEC_BLOB_MAGIC        "EDGECWB"  /* 8 bytes with the terminating NUL */
#define EDGEC_BLOB_VERSION      2u
#define EDGEC_BLOB_HEADER_SIZE  32u
#define EDGEC_BLOB_ALIGN        16u
#define EDGEC_BLOB_END_MAGIC    "EDGECEND" /* last 16 bytes: these 8, then the model hash */
#define EDGEC_BLOB_TRAILER_SIZE 16u

#endif /* EDGEC_RUNTIME_H */
