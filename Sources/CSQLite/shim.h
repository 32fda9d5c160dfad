// The system SQLite (Debian: libsqlite3-dev). A thin Swift wrapper lives in EditPacks/SQLite.swift.
#include <sqlite3.h>
