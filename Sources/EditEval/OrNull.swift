/// A value a JSON report always carries: null when it is missing. (A plain optional field is left out
/// of the object instead; reports use this where readers expect the key, e.g. a rate over no cases.)
package struct OrNull<Wrapped: Encodable>: Encodable {
    package let value: Wrapped?

    package init(_ value: Wrapped?) { self.value = value }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        if let value { try c.encode(value) } else { try c.encodeNil() }
    }
}

extension OrNull where Wrapped == Double {
    /// A number, null when it is missing or not finite (JSON has no NaN or infinity).
    package init(finite x: Double?) { value = x.flatMap { $0.isFinite ? $0 : nil } }
}
