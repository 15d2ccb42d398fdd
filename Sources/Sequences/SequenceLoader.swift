import Foundation

/// Opens a sequence folder or recording file, detecting its layout.
public enum SequenceLoader {
    /// Detects the layout of `url` and opens it: semfuse (`sequence.json`), TUM RGB-D
    /// (`rgb.txt` + `depth.txt`), ICL-NUIM (`pose.txt` + `color/` + `depth/`) or 7-Scenes/3DMatch
    /// (`frame-NNNNNN.*`).
    /// Files are recordings: ElasticFusion `.klg` logs and ScanNet `.sens` scans.
    public static func open(_ url: URL, options: ReaderOptions = ReaderOptions()) throws -> FrameSource {
        guard ReaderSupport.directoryExists(url) else {
            if ReaderSupport.fileExists(url) {
                if KLGReader.detect(url) { return try KLGReader(file: url, options: options) }
                if ScanNetSensReader.detect(url) { return try ScanNetSensReader(file: url, options: options) }
                throw SequenceError.unknownLayout(path: url.path, reason: "is a file but not a .klg log or a .sens scan; give the sequence folder or a recording (.klg, .sens)")
            }
            throw SequenceError.notFound(path: url.path)
        }
        if SemfuseSequenceReader.detect(url) { return try SemfuseSequenceReader(folder: url, options: options) }
        if TUMReader.detect(url) { return try TUMReader(folder: url, options: options) }
        if ICLNUIMReader.detect(url) { return try ICLNUIMReader(folder: url, options: options) }
        if SevenScenesReader.detect(url) { return try SevenScenesReader(folder: url, options: options) }
        throw SequenceError.unknownLayout(path: url.path, reason: """
            looked for sequence.json (semfuse), rgb.txt + depth.txt (TUM RGB-D), pose.txt + color/ + depth/ \
            (ICL-NUIM) and frame-NNNNNN.depth.png (7-Scenes/3DMatch)
            """)
    }
}
