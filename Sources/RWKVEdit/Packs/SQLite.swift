import CSQLite
import Foundation

/// A value bound to or read from an SQL statement.
package enum SQLValue {
    case int(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
    case null
}

/// A thin wrapper over one system-SQLite connection. Not thread-safe: one connection per reader.
package final class SQLiteDB {
    package let path: String
    private var db: OpaquePointer?

    /// Opens `path`; `readOnly` opens an existing file without creating or writing it.
    package init(path: String, readOnly: Bool) throws {
        self.path = path
        let flags = readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        var handle: OpaquePointer?
        let rc = sqlite3_open_v2(path, &handle, flags | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK, let handle else {
            let msg = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close(handle)
            throw PackError.unreadable(file: path, reason: msg)
        }
        db = handle
        sqlite3_busy_timeout(handle, 10_000)
    }

    deinit { sqlite3_close(db) }

    private func fail(_ what: String) -> PackError {
        let code = sqlite3_extended_errcode(db)
        let msg = String(cString: sqlite3_errmsg(db))
        // SQLITE_NOTADB / SQLITE_CORRUPT: the file is not (or no longer) a complete SQLite database.
        if code & 0xff == SQLITE_NOTADB || code & 0xff == SQLITE_CORRUPT {
            return .corrupt(file: path, reason: "\(msg) (truncated or not a pack) while \(what)")
        }
        return .sqlite(file: path, reason: "\(msg) while \(what)")
    }

    package func exec(_ sql: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        if sqlite3_exec(db, sql, nil, nil, &err) != SQLITE_OK {
            let e = fail("running \(sql.prefix(60))")
            sqlite3_free(err)
            throw e
        }
    }

    /// Runs `sql` with `args`, returning every row.
    @discardableResult
    package func query(_ sql: String, _ args: [SQLValue] = []) throws -> [[SQLValue]] {
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &stmt, nil) == SQLITE_OK, let stmt else { throw fail("preparing \(sql.prefix(60))") }
        defer { sqlite3_finalize(stmt) }
        let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
        for (i, a) in args.enumerated() {
            let idx = Int32(i + 1)
            let rc: Int32
            switch a {
            case .int(let v): rc = sqlite3_bind_int64(stmt, idx, v)
            case .real(let v): rc = sqlite3_bind_double(stmt, idx, v)
            case .text(let s): rc = sqlite3_bind_text(stmt, idx, s, -1, transient)
            case .blob(let b): rc = b.withUnsafeBytes { sqlite3_bind_blob(stmt, idx, $0.baseAddress, Int32($0.count), transient) }
            case .null: rc = sqlite3_bind_null(stmt, idx)
            }
            guard rc == SQLITE_OK else { throw fail("binding argument \(i + 1)") }
        }
        var rows: [[SQLValue]] = []
        while true {
            let rc = sqlite3_step(stmt)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw fail("running \(sql.prefix(60))") }
            let n = sqlite3_column_count(stmt)
            var row: [SQLValue] = []
            row.reserveCapacity(Int(n))
            for c in 0..<n {
                switch sqlite3_column_type(stmt, c) {
                case SQLITE_INTEGER: row.append(.int(sqlite3_column_int64(stmt, c)))
                case SQLITE_FLOAT: row.append(.real(sqlite3_column_double(stmt, c)))
                case SQLITE_TEXT:
                    row.append(.text(sqlite3_column_text(stmt, c).map { String(cString: $0) } ?? ""))
                case SQLITE_BLOB:
                    let count = Int(sqlite3_column_bytes(stmt, c))
                    if count > 0, let p = sqlite3_column_blob(stmt, c) {
                        row.append(.blob([UInt8](UnsafeRawBufferPointer(start: p, count: count))))
                    } else { row.append(.blob([])) }
                default: row.append(.null)
                }
            }
            rows.append(row)
        }
        return rows
    }

    /// Runs `body` inside one transaction; rolls back when it throws.
    package func transaction<T>(_ body: () throws -> T) throws -> T {
        try exec("BEGIN IMMEDIATE")
        do {
            let r = try body()
            try exec("COMMIT")
            return r
        } catch {
            try? exec("ROLLBACK")
            throw error
        }
    }
}

extension SQLValue {
    package var int: Int? { if case .int(let v) = self { return Int(v) }; return nil }
    package var double: Double? {
        switch self { case .real(let v): return v; case .int(let v): return Double(v); default: return nil }
    }
    package var text: String? { if case .text(let s) = self { return s }; return nil }
    package var blob: [UInt8]? { if case .blob(let b) = self { return b }; return nil }
}
