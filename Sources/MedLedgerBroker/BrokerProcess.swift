import Foundation

/// The broker's directory: its configuration, copies of the files it reads (`files/`), its
/// persistence (`data/`) and its log, all readable (and `data/` writable) by the user the broker
/// runs as.
struct BrokerFiles {
    let directory: String
    var filesDirectory: String { "\(directory)/files" }
    var dataDirectory: String { "\(directory)/data" }

    func prepare() throws(BrokerError) {
        for path in [directory, filesDirectory, dataDirectory] {
            do {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            } catch {
                throw BrokerError(.io, "cannot create the broker directory '\(path)': \(error.localizedDescription)")
            }
        }
        chmod(directory, 0o755)
        chmod(filesDirectory, 0o750)
        chmod(dataDirectory, 0o750)
        giveToBrokerUser(filesDirectory)
        giveToBrokerUser(dataDirectory)
    }

    func write(_ text: String, to path: String, mode: mode_t = 0o644) throws(BrokerError) {
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw BrokerError(.io, "cannot write '\(path)': \(error.localizedDescription)")
        }
        chmod(path, mode)
        giveToBrokerUser(path)
    }

    /// Copies a file the configuration names into `files/`; returns the copy's path.
    func copy(_ source: String, as name: String) throws(BrokerError) -> String {
        guard let data = FileManager.default.contents(atPath: source) else {
            throw BrokerError(.invalidConfiguration, "the broker configuration names '\(source)', which cannot be read")
        }
        let target = "\(filesDirectory)/\(name)"
        do {
            try data.write(to: URL(fileURLWithPath: target), options: .atomic)
        } catch {
            throw BrokerError(.io, "cannot write '\(target)': \(error.localizedDescription)")
        }
        chmod(target, 0o600)
        giveToBrokerUser(target)
        return target
    }

    /// When running as root, hands a path to the `mosquitto` user, which the broker switches to.
    func giveToBrokerUser(_ path: String) {
        guard geteuid() == 0, let (uid, gid) = Self.brokerUser else { return }
        _ = chown(path, uid, gid)
    }

    /// The `mosquitto` user's ids, looked up once (with the reentrant getpwnam_r: tests start
    /// brokers from many threads at once).
    static let brokerUser: (uid_t, gid_t)? = {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        let rc = getpwnam_r("mosquitto", &entry, &buffer, buffer.count, &result)
        guard rc == 0, result != nil else { return nil }
        return (entry.pw_uid, entry.pw_gid)
    }()
}

/// Rewrites a configuration for the harness: ports, loopback binding, persistence, log, files.
struct ConfigRewriter {
    let files: BrokerFiles
    let portMap: [Int: Int]

    static let fileOptions: Set<String> = [
        "cafile", "certfile", "keyfile", "password_file", "acl_file", "psk_file", "crlfile", "dhparamfile",
        "bridge_cafile", "bridge_certfile", "bridge_keyfile",
    ]
    static let dropped: Set<String> = ["log_dest", "pid_file", "persistence_location", "persistence_file"]

    func rewrite(_ text: String) throws(BrokerError) -> String {
        var copies: [String: String] = [:]
        var output: [String] = ["# Rewritten by the MedLedger broker harness."]
        for line in try inlined(text) {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard let option = words.first, !option.hasPrefix("#") else {
                output.append(line)
                continue
            }
            if Self.dropped.contains(option) { continue }
            if option == "listener", words.count >= 2, let configured = Int(words[1]), let actual = portMap[configured]
            {
                output.append("listener \(actual) 127.0.0.1")
                continue
            }
            if Self.fileOptions.contains(option), words.count >= 2 {
                let source = words.dropFirst().joined(separator: " ")
                let copy: String
                if let existing = copies[source] {
                    copy = existing
                } else {
                    let name = "\(copies.count)-" + URL(fileURLWithPath: source).lastPathComponent
                    copy = try files.copy(source, as: name)
                    copies[source] = copy
                }
                output.append("\(option) \(copy)")
                continue
            }
            output.append(line)
        }
        output.append("log_dest stderr")
        output.append("persistence_location \(files.dataDirectory)/")
        return output.joined(separator: "\n") + "\n"
    }

    /// The lines, with every `include_dir` replaced by the `.conf` files it holds (sorted).
    private func inlined(_ text: String) throws(BrokerError) -> [String] {
        var lines: [String] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix("include_dir ") else {
                lines.append(line)
                continue
            }
            let path = String(trimmed.dropFirst("include_dir ".count)).trimmingCharacters(in: .whitespaces)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            for name in names.sorted() where name.hasSuffix(".conf") {
                guard let data = FileManager.default.contents(atPath: "\(path)/\(name)") else {
                    throw BrokerError(.invalidConfiguration, "cannot read '\(path)/\(name)'")
                }
                lines.append("# from \(path)/\(name)")
                lines += String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
            }
        }
        return lines
    }
}

/// Starting and reaping processes with posix_spawn: a log file for stdout and stderr (never a
/// pipe), /dev/null for stdin, default signal handling and an empty signal mask in the child.
enum Spawner {
    static func spawn(_ executable: String, arguments: [String], logPath: String) throws(BrokerError) -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGQUIT, SIGUSR1, SIGUSR2] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, executable, &actions, &attributes, argv, environ)
        guard rc == 0 else {
            throw BrokerError(.spawnFailed, "cannot start '\(executable)': \(String(cString: strerror(rc)))")
        }
        return pid
    }

    /// The exit status if the process has ended (reaping it), nil while it runs.
    static func exitStatus(_ pid: Int32) -> Int32? {
        var status: Int32 = 0
        let rc = waitpid(pid, &status, WNOHANG)
        if rc == 0 { return nil }
        if rc < 0 { return errno == EINTR ? nil : -1 }
        return status
    }

    /// Waits for the process to end.
    @discardableResult
    static func wait(_ pid: Int32) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status
    }
}

/// Loopback ports.
enum FreePort {
    /// A port that was free a moment ago (the kernel's choice for a bind to port 0).
    static func allocate() throws(BrokerError) -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BrokerError(.io, "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { throw BrokerError(.io, "bind: \(String(cString: strerror(errno)))") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Whether something accepts TCP connections on the port now.
    static func accepts(host: String, port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = loopback(port: port)
        inet_pton(AF_INET, host, &address.sin_addr)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return rc == 0
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return address
    }
}

/// The per-process limit of open files, which a broker with thousands of clients needs raised
/// (Debian's default soft limit is 1024). Children inherit it.
public enum FileLimit {
    /// Raises the soft limit to `wanted` (and, as root, the hard limit too); returns the soft
    /// limit in force afterwards.
    @discardableResult
    public static func raise(to wanted: Int) -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        let target = rlim_t(wanted)
        if limit.rlim_cur >= target { return Int(limit.rlim_cur) }
        if limit.rlim_max < target && geteuid() == 0 {
            var raised = limit
            raised.rlim_max = target
            raised.rlim_cur = target
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { return wanted }
        }
        limit.rlim_cur = min(target, limit.rlim_max)
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return Int(limit.rlim_cur)
    }
}
