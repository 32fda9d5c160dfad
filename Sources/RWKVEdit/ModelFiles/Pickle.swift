import Foundation

/// A restricted unpickler for PyTorch state dicts. It never executes anything: it knows the few
/// opcodes `torch.save` emits for a dict of tensors and the few globals such a dict references
/// (OrderedDict, the tensor rebuild functions, the typed storage classes). Any other global or
/// opcode is refused with `RWKVError.unsupported`.
enum Pickle {
    /// A storage reference from a persistent id: ('storage', storage_type, key, location, numel).
    struct StorageRef {
        let dtype: DType?          // nil: a recognised torch storage type of an unsupported dtype
        let typeName: String
        let key: String
        let numel: Int
    }

    /// A tensor view: storage, offset and size, in elements; strides already checked contiguous.
    struct TensorRef {
        let storage: StorageRef
        let offset: Int
        let shape: [Int]
    }

    final class DictBox {
        var items: [(key: Value, value: Value)] = []
        /// Nesting depth of the deepest value inside (bounded so nothing recurses deeply later).
        var depth = 1
    }

    final class ListBox {
        var items: [Value] = []
        var depth = 1
    }

    enum Global: String {
        case orderedDict = "collections.OrderedDict"
        case rebuildTensorV2 = "torch._utils._rebuild_tensor_v2"
        case rebuildParameter = "torch._utils._rebuild_parameter"
    }

    indirect enum Value {
        case none
        case bool(Bool)
        case int(Int)
        case string(String)
        case tuple([Value], depth: Int)
        case list(ListBox)
        case dict(DictBox)
        case global(Global)
        case storageType(dtype: DType?, name: String)
        case storage(StorageRef)
        case tensor(TensorRef)

        var depth: Int {
            switch self {
            case .tuple(_, let d): return d
            case .list(let l): return l.depth
            case .dict(let d): return d.depth
            default: return 0
            }
        }

        var kind: String {
            switch self {
            case .none: return "None"
            case .bool: return "bool"
            case .int: return "int"
            case .string: return "str"
            case .tuple: return "tuple"
            case .list: return "list"
            case .dict: return "dict"
            case .global(let g): return g.rawValue
            case .storageType(_, let n): return n
            case .storage: return "storage"
            case .tensor: return "tensor"
            }
        }
    }

    static let maxStack = 1 << 20
    static let maxMemo = 1 << 22
    static let maxMarks = 1 << 16
    static let maxDepth = 100

    /// Storage classes torch pickles by name (legacy typed storages); only the float ones load.
    static func storageType(module: String, name: String) -> Value? {
        guard module == "torch", name.hasSuffix("Storage") else { return nil }
        switch name {
        case "FloatStorage": return .storageType(dtype: .f32, name: "torch.FloatStorage")
        case "HalfStorage": return .storageType(dtype: .f16, name: "torch.HalfStorage")
        case "BFloat16Storage": return .storageType(dtype: .bf16, name: "torch.BFloat16Storage")
        case "DoubleStorage", "LongStorage", "IntStorage", "ShortStorage", "CharStorage", "ByteStorage",
             "BoolStorage", "ComplexFloatStorage", "ComplexDoubleStorage":
            return .storageType(dtype: nil, name: "torch." + name)
        default: return nil
        }
    }

    /// Parses `data` (the archive's data.pkl) into a value. `file` names the file in errors.
    static func load(_ data: ByteRegion, file: String) throws -> Value {
        var r = Reader(data: data, file: file)
        return try r.run()
    }

    struct Reader {
        let data: ByteRegion
        let file: String
        var pos = 0
        var stack: [Value] = []
        var marks: [Int] = []
        var memo: [Int: Value] = [:]

        init(data: ByteRegion, file: String) {
            self.data = data
            self.file = file
        }

        func malformed(_ why: String) -> RWKVError {
            .malformed(file: file, reason: "pickle (data.pkl) at byte \(pos): \(why)")
        }

        func refuse(_ what: String) -> RWKVError {
            .unsupported(file: file, reason: "refusing to load: the pickle references \(what); only torch state-dict globals are allowed (collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter, torch.FloatStorage/HalfStorage/BFloat16Storage)")
        }

        mutating func bytes(_ n: Int) throws -> UnsafeRawBufferPointer {
            guard n >= 0, n <= data.count - pos else { throw malformed("needs \(n) more bytes but the pickle ends (truncated)") }
            defer { pos += n }
            return UnsafeRawBufferPointer(start: data.base + pos, count: n)
        }

        mutating func u8() throws -> Int { Int(try bytes(1)[0]) }
        mutating func u16() throws -> Int { let b = try bytes(2); return Int(b[0]) | Int(b[1]) << 8 }
        mutating func u32() throws -> UInt32 {
            let b = try bytes(4)
            return UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24
        }
        mutating func u64() throws -> UInt64 {
            let b = try bytes(8)
            var v: UInt64 = 0
            for i in (0..<8).reversed() { v = v << 8 | UInt64(b[i]) }
            return v
        }

        /// A newline-terminated line (GLOBAL's module and name).
        mutating func line() throws -> String {
            let start = pos
            while pos < data.count {
                if data.base.load(fromByteOffset: pos, as: UInt8.self) == 0x0A {
                    let s = String(decoding: UnsafeRawBufferPointer(start: data.base + start, count: pos - start), as: UTF8.self)
                    pos += 1
                    return s
                }
                pos += 1
                guard pos - start < 4096 else { throw malformed("a GLOBAL name is longer than 4096 bytes") }
            }
            throw malformed("a GLOBAL name is not terminated (truncated)")
        }

        mutating func utf8(_ n: Int) throws -> String {
            let b = try bytes(n)
            guard let s = String(bytes: b, encoding: .utf8) else { throw malformed("a string is not valid UTF-8") }
            return s
        }

        mutating func push(_ v: Value) throws {
            guard stack.count < maxStack else { throw malformed("the stack exceeds \(maxStack) items") }
            stack.append(v)
        }

        mutating func pop() throws -> Value {
            guard let v = stack.popLast() else { throw malformed("pops from an empty stack") }
            if let m = marks.last, stack.count < m { throw malformed("pops past a MARK") }
            return v
        }

        func top() throws -> Value {
            guard let v = stack.last else { throw malformed("reads an empty stack") }
            return v
        }

        /// Items above the most recent MARK, removing them and the mark.
        mutating func popMark() throws -> [Value] {
            guard let m = marks.popLast() else { throw malformed("no MARK to pop to") }
            guard m <= stack.count else { throw malformed("a MARK lies above the stack top") }
            let items = Array(stack[m...])
            stack.removeSubrange(m...)
            return items
        }

        mutating func memoPut(_ key: Int) throws {
            let v = try top()
            guard key >= 0 else { throw malformed("negative memo key") }
            if memo[key] == nil { guard memo.count < maxMemo else { throw malformed("the memo exceeds \(maxMemo) entries") } }
            memo[key] = v
        }

        mutating func memoGet(_ key: Int) throws {
            guard let v = memo[key] else { throw malformed("memo key \(key) is read before it is written") }
            try push(v)
        }

        func global(module: String, name: String) throws -> Value {
            let full = module + "." + name
            if let g = Global(rawValue: full) { return .global(g) }
            if let s = storageType(module: module, name: name) { return s }
            throw refuse(full)
        }

        func int(_ v: Value, _ what: String) throws -> Int {
            if case .int(let i) = v { return i }
            if case .bool(let b) = v { return b ? 1 : 0 }
            throw malformed("\(what) is a \(v.kind), expected an int")
        }

        func ints(_ v: Value, _ what: String) throws -> [Int] {
            guard case .tuple(let items, _) = v else { throw malformed("\(what) is a \(v.kind), expected a tuple of ints") }
            return try items.map { try int($0, what) }
        }

        func persistentLoad(_ pid: Value) throws -> Value {
            guard case .tuple(let t, _) = pid, t.count >= 5, case .string(let tag) = t[0], tag == "storage" else {
                throw malformed("a persistent id is not ('storage', type, key, location, numel)")
            }
            guard case .storageType(let dtype, let typeName) = t[1] else {
                throw malformed("a persistent id names storage type \(t[1].kind)")
            }
            guard case .string(let key) = t[2] else { throw malformed("a storage key is a \(t[2].kind), expected str") }
            let numel = try int(t[4], "a storage's element count")
            guard numel >= 0, numel < (1 << 40) else { throw malformed("a storage claims \(numel) elements") }
            return .storage(StorageRef(dtype: dtype, typeName: typeName, key: key, numel: numel))
        }

        func call(_ f: Value, _ args: Value) throws -> Value {
            guard case .global(let g) = f else { throw refuse("a call of \(f.kind)") }
            guard case .tuple(let a, _) = args else { throw malformed("REDUCE arguments are a \(args.kind)") }
            switch g {
            case .orderedDict:
                guard a.isEmpty else { throw malformed("OrderedDict is called with arguments") }
                return .dict(DictBox())
            case .rebuildParameter:
                guard a.count >= 1, case .tensor = a[0] else { throw malformed("_rebuild_parameter without a tensor") }
                return a[0]
            case .rebuildTensorV2:
                guard a.count >= 4, case .storage(let s) = a[0] else {
                    throw malformed("_rebuild_tensor_v2 needs (storage, offset, size, stride, ...)")
                }
                let offset = try int(a[1], "a tensor's storage offset")
                let shape = try ints(a[2], "a tensor's size")
                let stride = try ints(a[3], "a tensor's stride")
                guard shape.count == stride.count, shape.count <= 8 else { throw malformed("a tensor's size and stride disagree") }
                let n = try checkedElementCount(shape, file: file, name: "storage \(s.key)")
                // Contiguous (row-major) strides only; dimensions of size 1 may carry any stride.
                var expect = 1
                for i in stride.indices.reversed() {
                    if shape[i] != 1 && n > 0 && stride[i] != expect {
                        throw RWKVError.unsupported(file: file, reason: "a tensor on storage \(s.key) has strides \(stride) for size \(shape): only contiguous tensors are read; save with .contiguous()")
                    }
                    expect *= shape[i]
                }
                guard offset >= 0, offset <= s.numel, n <= s.numel - offset else {
                    throw malformed("a tensor of \(n) elements at offset \(offset) overruns storage \(s.key) of \(s.numel) elements")
                }
                return .tensor(TensorRef(storage: s, offset: offset, shape: shape))
            }
        }

        func tuple(_ items: [Value]) throws -> Value {
            let deepest = items.map(\.depth).max() ?? 0
            guard deepest < maxDepth else { throw malformed("values nest deeper than \(maxDepth) levels") }
            return .tuple(items, depth: deepest + 1)
        }

        mutating func setItems(_ target: Value, _ kv: [Value]) throws {
            guard case .dict(let d) = target else { throw malformed("SETITEM(S) on a \(target.kind)") }
            guard kv.count % 2 == 0 else { throw malformed("SETITEMS with an odd number of items") }
            var i = 0
            let deepest = kv.map(\.depth).max() ?? 0
            guard deepest < maxDepth else { throw malformed("values nest deeper than \(maxDepth) levels") }
            d.depth = max(d.depth, deepest + 1)
            while i < kv.count { d.items.append((kv[i], kv[i + 1])); i += 2 }
        }

        mutating func run() throws -> Value {
            while true {
                let opPos = pos
                let op = try u8()
                switch op {
                case 0x80: // PROTO
                    let v = try u8()
                    guard v >= 2, v <= 5 else { throw RWKVError.unsupported(file: file, reason: "pickle protocol \(v); torch.save writes 2") }
                case 0x95: // FRAME
                    _ = try u64()
                case 0x2E: // STOP
                    let v = try pop()
                    guard stack.isEmpty, marks.isEmpty else { throw malformed("STOP with items left on the stack") }
                    return v
                case 0x7D: try push(.dict(DictBox()))                      // EMPTY_DICT
                case 0x29: try push(.tuple([], depth: 1))                  // EMPTY_TUPLE
                case 0x5D: try push(.list(ListBox()))                      // EMPTY_LIST
                case 0x28:                                                 // MARK
                    guard marks.count < maxMarks else { throw malformed("more than \(maxMarks) nested MARKs") }
                    marks.append(stack.count)
                case 0x4E: try push(.none)                                 // NONE
                case 0x88: try push(.bool(true))                           // NEWTRUE
                case 0x89: try push(.bool(false))                          // NEWFALSE
                case 0x4B: try push(.int(try u8()))                        // BININT1
                case 0x4D: try push(.int(try u16()))                       // BININT2
                case 0x4A: try push(.int(Int(Int32(bitPattern: try u32())))) // BININT
                case 0x8A:                                                 // LONG1
                    let n = try u8()
                    guard n <= 8 else { throw malformed("LONG1 of \(n) bytes is too large") }
                    let b = try bytes(n)
                    var v: UInt64 = 0
                    for i in (0..<n).reversed() { v = v << 8 | UInt64(b[i]) }
                    if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 { v |= ~UInt64(0) << UInt64(8 * n) }
                    try push(.int(Int(Int64(bitPattern: v))))
                case 0x58:                                                 // BINUNICODE
                    let n = try u32()
                    try push(.string(try utf8(Int(n))))
                case 0x8C:                                                 // SHORT_BINUNICODE
                    try push(.string(try utf8(try u8())))
                case 0x71: try memoPut(try u8())                           // BINPUT
                case 0x72: try memoPut(Int(try u32()))                     // LONG_BINPUT
                case 0x94: try memoPut(memo.count)                         // MEMOIZE
                case 0x68: try memoGet(try u8())                           // BINGET
                case 0x6A: try memoGet(Int(try u32()))                     // LONG_BINGET
                case 0x63:                                                 // GLOBAL
                    let module = try line()
                    let name = try line()
                    try push(try global(module: module, name: name))
                case 0x93:                                                 // STACK_GLOBAL
                    let n = try pop(), m = try pop()
                    guard case .string(let module) = m, case .string(let name) = n else { throw malformed("STACK_GLOBAL without two strings") }
                    try push(try global(module: module, name: name))
                case 0x74: try push(try tuple(try popMark()))              // TUPLE
                case 0x85: try push(try tuple([try pop()]))                // TUPLE1
                case 0x86:                                                 // TUPLE2
                    let b = try pop(), a = try pop()
                    try push(try tuple([a, b]))
                case 0x87:                                                 // TUPLE3
                    let c = try pop(), b = try pop(), a = try pop()
                    try push(try tuple([a, b, c]))
                case 0x51:                                                 // BINPERSID
                    try push(try persistentLoad(try pop()))
                case 0x52:                                                 // REDUCE
                    let args = try pop(), f = try pop()
                    try push(try call(f, args))
                case 0x73:                                                 // SETITEM
                    let v = try pop(), k = try pop()
                    try setItems(try top(), [k, v])
                case 0x75:                                                 // SETITEMS
                    let kv = try popMark()
                    try setItems(try top(), kv)
                case 0x61:                                                 // APPEND
                    let v = try pop()
                    guard case .list(let l) = try top() else { throw malformed("APPEND on a \(try top().kind)") }
                    guard v.depth < maxDepth else { throw malformed("values nest deeper than \(maxDepth) levels") }
                    l.depth = max(l.depth, v.depth + 1)
                    l.items.append(v)
                case 0x65:                                                 // APPENDS
                    let items = try popMark()
                    guard case .list(let l) = try top() else { throw malformed("APPENDS on a \(try top().kind)") }
                    let deepest = items.map(\.depth).max() ?? 0
                    guard deepest < maxDepth else { throw malformed("values nest deeper than \(maxDepth) levels") }
                    l.depth = max(l.depth, deepest + 1)
                    l.items.append(contentsOf: items)
                case 0x62:                                                 // BUILD
                    let state = try pop()
                    guard case .dict = try top() else { throw refuse("BUILD (object state) on a \(try top().kind)") }
                    switch state {
                    case .none: break
                    case .dict(let d) where d.items.isEmpty: break
                    case .tuple(let t, _) where t.isEmpty: break
                    default: throw refuse("BUILD with a \(state.kind) state on a dict")
                    }
                default:
                    pos = opPos
                    throw RWKVError.unsupported(file: file, reason: String(format: "refusing to load: pickle opcode 0x%02X at byte %d is not one torch.save emits for a state dict", op, opPos))
                }
            }
        }
    }
}
