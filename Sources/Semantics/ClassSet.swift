import Imaging

/// One semantic class: its id in the class set, name and display colour.
public struct SemanticClass: Equatable, Hashable, Sendable {
    public var id: Int
    public var name: String
    public var color: RGB8
    public init(id: Int, name: String, color: RGB8) { self.id = id; self.name = name; self.color = color }
}

/// A set of semantic classes with palette, as used for labels, probabilities and export.
///
/// Label images store class ids as 8-bit values; `ignoreLabel` (255, the NYU convention) marks
/// pixels without annotation, which carry no evidence.
public struct ClassSet: Equatable, Sendable, CustomStringConvertible {
    public var name: String
    public var classes: [SemanticClass]
    /// Id of a class meaning "no label" (NYU-13's 0), excluded when choosing a surfel's label.
    public var unlabelledId: Int?

    public static let ignoreLabel: UInt8 = 255

    public init(name: String, classes: [SemanticClass], unlabelledId: Int? = nil) {
        self.name = name; self.classes = classes; self.unlabelledId = unlabelledId
    }

    /// A class set from `(name, r, g, b)` rows; ids are the row numbers.
    init(name: String, table: [(String, UInt8, UInt8, UInt8)], unlabelledId: Int? = nil) {
        self.init(name: name, classes: table.enumerated().map {
            SemanticClass(id: $0.offset, name: $0.element.0, color: RGB8($0.element.1, $0.element.2, $0.element.3))
        }, unlabelledId: unlabelledId)
    }

    public var count: Int { classes.count }

    public func color(of id: Int) -> RGB8 {
        id >= 0 && id < classes.count ? classes[id].color : RGB8(0, 0, 0)
    }

    public func index(named name: String) -> Int? {
        classes.firstIndex { $0.name == name }
    }

    public var description: String { "\(name) (\(count) classes)" }

    /// Looks a class set up by name (`nyu40`, `nyu13`, `ade32`).
    public static func named(_ name: String) -> ClassSet? {
        switch name.lowercased() {
        case "nyu40", "nyu-40": return .nyu40
        case "nyu13", "nyu-13": return .nyu13
        case "ade32", "ade-32", "ade20k32": return .ade32
        default: return nil
        }
    }

    /// Names accepted by `named(_:)`, for help texts.
    public static let knownNames = ["ade32", "nyu40", "nyu13"]

    /// The 40 NYU Depth v2 classes (Gupta et al.) with the colour map of the joint network's
    /// notebooks (`cmap_nyud`, indexed by id + 1). Ids 0-39.
    public static let nyu40: ClassSet = {
        let table: [(String, UInt8, UInt8, UInt8)] = [
            ("wall", 128, 0, 0), ("floor", 0, 128, 0), ("cabinet", 128, 128, 0), ("bed", 0, 0, 128),
            ("chair", 128, 0, 128), ("sofa", 0, 128, 128), ("table", 128, 128, 128), ("door", 64, 0, 0),
            ("window", 192, 0, 0), ("bookshelf", 64, 128, 0), ("picture", 192, 128, 0), ("counter", 64, 0, 128),
            ("blinds", 192, 0, 128), ("desk", 64, 128, 128), ("shelves", 192, 128, 128), ("curtain", 0, 64, 0),
            ("dresser", 128, 64, 0), ("pillow", 0, 192, 0), ("mirror", 128, 192, 0), ("floor mat", 0, 64, 128),
            ("clothes", 128, 64, 128), ("ceiling", 0, 192, 128), ("books", 128, 192, 128), ("refrigerator", 64, 64, 0),
            ("television", 192, 64, 0), ("paper", 64, 192, 0), ("towel", 192, 192, 0), ("shower curtain", 64, 64, 128),
            ("box", 192, 64, 128), ("whiteboard", 64, 192, 128), ("person", 192, 192, 128), ("night stand", 0, 0, 64),
            ("toilet", 128, 0, 64), ("sink", 0, 128, 64), ("lamp", 128, 128, 64), ("bathtub", 0, 0, 192),
            ("bag", 128, 0, 192), ("otherstructure", 0, 128, 192), ("otherfurniture", 128, 128, 192), ("otherprop", 64, 0, 64),
        ]
        return ClassSet(name: "nyu40", table: table)
    }()

    /// SemanticFusion's 13 NYU classes plus 0 = unlabelled, with its colour scheme.
    public static let nyu13: ClassSet = {
        let table: [(String, UInt8, UInt8, UInt8)] = [
            ("unlabelled", 20, 20, 20), ("bed", 0, 128, 128), ("books", 250, 50, 50), ("ceiling", 102, 0, 204),
            ("chair", 50, 50, 250), ("floor", 220, 220, 220), ("furniture", 255, 69, 20), ("objects", 255, 20, 127),
            ("picture", 50, 50, 150), ("sofa", 222, 180, 140), ("table", 50, 250, 50), ("tv", 255, 215, 0),
            ("wall", 150, 150, 150), ("window", 0, 255, 255),
        ]
        return ClassSet(name: "nyu13", table: table, unlabelledId: 0)
    }()

    /// The bundled DeepLab-v3 segmenter's classes (MLPerf mobile's ADE20K subset): 0 = other,
    /// then the first 31 ADE20K classes in ADE20K's order, with ADE20K's usual palette.
    /// "other" is a real class (everything else), not "unlabelled": it can win a surfel.
    public static let ade32: ClassSet = {
        let table: [(String, UInt8, UInt8, UInt8)] = [
            ("other", 0, 0, 0), ("wall", 120, 120, 120), ("building", 180, 120, 120), ("sky", 6, 230, 230),
            ("floor", 80, 50, 50), ("tree", 4, 200, 3), ("ceiling", 120, 120, 80), ("road", 140, 140, 140),
            ("bed", 204, 5, 255), ("windowpane", 230, 230, 230), ("grass", 4, 250, 7), ("cabinet", 224, 5, 255),
            ("sidewalk", 235, 255, 7), ("person", 150, 5, 61), ("earth", 120, 120, 70), ("door", 8, 255, 51),
            ("table", 255, 6, 82), ("mountain", 143, 255, 140), ("plant", 204, 255, 4), ("curtain", 255, 51, 7),
            ("chair", 204, 70, 3), ("car", 0, 102, 200), ("water", 61, 230, 250), ("painting", 255, 6, 51),
            ("sofa", 11, 102, 255), ("shelf", 255, 7, 71), ("house", 255, 9, 224), ("sea", 9, 7, 230),
            ("mirror", 220, 220, 220), ("rug", 255, 9, 92), ("field", 112, 9, 255), ("armchair", 8, 255, 214),
        ]
        return ClassSet(name: "ade32", table: table)
    }()

    /// ADE-32 id → NYU-40 id (docs/class-sets.md): indoor classes onto their NYU namesakes,
    /// outdoor classes onto otherstructure (37), "other", plant and car onto otherprop (39).
    public static let ade32ToNyu40: [Int] = [
        39, 0, 37, 37, 1, 37, 21, 37, 3, 8, 37, 2, 37, 30, 37, 7,
        6, 37, 39, 15, 4, 39, 37, 10, 5, 14, 37, 37, 18, 19, 37, 4,
    ]

    /// NYU-40 id → NYU-13 id (the table published with the NYUv2 13-class benchmark).
    public static let nyu40ToNyu13: [Int] = [
        12, 5, 6, 1, 4, 9, 10, 12, 13, 6, 8, 6, 13, 10, 6, 13, 6, 7, 7, 5,
        7, 3, 2, 6, 11, 7, 7, 7, 7, 7, 7, 6, 7, 7, 7, 7, 7, 7, 6, 7,
    ]
}
