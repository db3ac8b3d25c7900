/// `lseek(2)`'s `SEEK_DATA` and `SEEK_HOLE` (Linux 3.1+): where the next data, or the next hole,
/// of a sparse file starts. Glibc declares them only with `_GNU_SOURCE`, which the headers Swift
/// imports are not read with, so their values are spelled out here, once.
enum SparseSeek {
    static let data: Int32 = 3
    static let hole: Int32 = 4
}
