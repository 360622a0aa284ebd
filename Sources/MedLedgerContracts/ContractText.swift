internal import Foundation
internal import WAT

/// Contracts written in WebAssembly text (WAT): compiled by WasmKit's parser into a module with
/// no name section or other custom section, so the same text always gives the same bytes.
public enum ContractText {
    /// A WAT text that does not compile.
    public struct Failure: Error, CustomStringConvertible {
        /// What is wrong, with the place in the text the parser names.
        public let description: String
    }

    /// Compiles a module's text.
    /// - Parameter text: the `(module ...)` text.
    /// - Returns: the module's bytes.
    /// - Throws: `Failure` naming what is wrong and where.
    public static func compile(_ text: String) throws(Failure) -> [UInt8] {
        do {
            return try wat2wasm(text, options: EncodeOptions(nameSection: false))
        } catch {
            // The parser's own text ends with its location in debug form; say it for people.
            var what = error.description
            var place = ""
            if let location = error.location {
                let (line, column) = location.computeLineAndColumn()
                if let cut = what.range(of: " at Location(") { what = String(what[..<cut.lowerBound]) }
                place = " at line \(line), column \(column + 1)"
            }
            throw Failure(description: "not a valid WAT module\(place): \(what)")
        }
    }
}
