import CMosquitto
import Foundation
import Synchronization

/// A thread that drives MQTT connections with libmosquitto's non-threaded API over one epoll
/// set: every libmosquitto call of its connections runs on this thread, so thousands of
/// connections (a device fleet) need only one or a few threads. Each `MQTTClient` made without a
/// loop gets its own; an `MQTTFleet` shares a few among many clients.
public final class MQTTEventLoop: @unchecked Sendable {
    // @unchecked Sendable: the loop-confined properties below (`connections`, `lastTick`) are only
    // read and written on the loop's own thread; what other threads touch is behind `inbound`
    // (a Mutex) or atomic; the two descriptors are fixed at init and closed in deinit, after the
    // thread has ended (the thread holds the loop strongly while it runs).

    /// A unit of work for the loop thread.
    enum Command {
        case run(@Sendable () -> Void)
        case publish(MQTTConnection, OutgoingPublish)
    }

    private struct Inbound {
        var commands: [Command] = []
        var stopRequested = false
        var exitWaiters: [CheckedContinuation<Void, Never>] = []
        var exited = false
    }

    /// The loop's name (its thread's name).
    public let name: String
    private let epollFD: Int32
    private let wakeFD: Int32
    private let inbound = Mutex(Inbound())
    private let wakePending = Atomic<Bool>(false)
    private let threadID = Atomic<UInt>(0)
    private let registered = Atomic<Int>(0)
    private let tokens = Atomic<UInt64>(1)

    // Loop-confined.
    private var connections: [UInt64: MQTTConnection] = [:]
    private var spare: [Command] = []

    private static let wakeToken: UInt64 = 0
    private static let tick: Duration = .milliseconds(50)

    /// Starts a loop thread.
    /// - Parameter name: the thread's name.
    /// - Throws: `MQTTError` with code `.system` when the epoll set or its wake-up descriptor can't be made.
    public init(name: String = "medledger-mqtt") throws(MQTTError) {
        MQTTLibrary.initialize()
        self.name = name
        let epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else {
            throw MQTTError(.system, "epoll_create1: \(String(cString: strerror(medledger_errno())))")
        }
        let wake = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard wake >= 0 else {
            close(epoll)
            throw MQTTError(.system, "eventfd: \(String(cString: strerror(medledger_errno())))")
        }
        epollFD = epoll
        wakeFD = wake
        _ = medledger_epoll_ctl(epoll, EPOLL_CTL_ADD, wake, EPOLLIN.rawValue, Self.wakeToken)
        let thread = Thread { [self] in run() }
        thread.name = name
        thread.stackSize = 1 << 20
        thread.start()
    }

    deinit {
        close(epollFD)
        close(wakeFD)
    }

    /// The number of connections (clients) on this loop.
    public var connectionCount: Int { registered.load(ordering: .relaxed) }

    /// Closes every connection on the loop without an MQTT DISCONNECT, ends its thread and waits
    /// until it has ended. Clients on it fail every later operation with `.closed`.
    public func shutdown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let exited = inbound.withLock { state -> Bool in
                if state.exited { return true }
                state.stopRequested = true
                state.exitWaiters.append(continuation)
                return false
            }
            if exited { continuation.resume() } else { wake() }
        }
    }

    /// Asks the thread to end once it has run the commands already given; does not wait.
    func stopSoon() {
        inbound.withLock { $0.commands.append(.run { [self] in inbound.withLock { $0.stopRequested = true } }) }
        wake()
    }

    /// Whether the caller runs on the loop's thread.
    var isLoopThread: Bool { threadID.load(ordering: .acquiring) == UInt(bitPattern: Int(bitPattern: pthread_self())) }

    func makeToken() -> UInt64 { tokens.wrappingAdd(1, ordering: .relaxed).oldValue }

    /// Runs `body` on the loop thread, after the commands given before it; when the loop has
    /// shut down, runs `ifClosed` (on the caller's thread) instead, so no waiter is left behind.
    func execute(_ body: @escaping @Sendable () -> Void, ifClosed: (@Sendable () -> Void)? = nil) {
        if !submit(.run(body)) { ifClosed?() }
    }

    @discardableResult
    func submit(_ command: Command) -> Bool {
        let accepted = inbound.withLock { state -> Bool in
            guard !state.exited else { return false }
            state.commands.append(command)
            return true
        }
        if accepted {
            wake()
        } else if case .publish(_, let publish) = command {
            publish.complete(.failure(MQTTError(.closed, "the MQTT event loop has shut down")))
        }
        return accepted
    }

    private func wake() {
        if !wakePending.exchange(true, ordering: .acquiringAndReleasing) {
            var one: UInt64 = 1
            _ = write(wakeFD, &one, 8)
        }
    }

    // MARK: loop thread

    func add(_ connection: MQTTConnection) {
        connections[connection.token] = connection
        registered.add(1, ordering: .relaxed)
    }

    func remove(_ connection: MQTTConnection) {
        if connections.removeValue(forKey: connection.token) != nil {
            registered.subtract(1, ordering: .relaxed)
        }
    }

    /// Adds, changes or removes a descriptor's registration. `events` nil removes it.
    func register(fd: Int32, token: UInt64, events: UInt32?, previousFD: Int32) {
        if previousFD >= 0 && previousFD != fd {
            _ = medledger_epoll_ctl(epollFD, EPOLL_CTL_DEL, previousFD, 0, 0)
        }
        guard fd >= 0 else { return }
        guard let events else {
            _ = medledger_epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, 0, 0)
            return
        }
        let op = previousFD == fd ? EPOLL_CTL_MOD : EPOLL_CTL_ADD
        if medledger_epoll_ctl(epollFD, op, fd, events, token) != 0 {
            let error = medledger_errno()
            if error == ENOENT {
                _ = medledger_epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, events, token)
            } else if error == EEXIST {
                _ = medledger_epoll_ctl(epollFD, EPOLL_CTL_MOD, fd, events, token)
            }
        }
    }

    private func run() {
        threadID.store(UInt(bitPattern: Int(bitPattern: pthread_self())), ordering: .releasing)
        let clock = ContinuousClock()
        var datas = [UInt64](repeating: 0, count: 256)
        var masks = [UInt32](repeating: 0, count: 256)
        var lastTick = clock.now
        var touched: [MQTTConnection] = []
        while true {
            let now = clock.now
            let untilTick = Self.tick - (now - lastTick)
            let timeout = max(
                0, Int32(untilTick.components.seconds * 1000 + untilTick.components.attoseconds / 1_000_000_000_000_000)
            )
            let count = datas.withUnsafeMutableBufferPointer { d in
                masks.withUnsafeMutableBufferPointer { m in
                    medledger_epoll_wait(epollFD, d.baseAddress, m.baseAddress, 256, timeout)
                }
            }
            if count > 0 {
                for index in 0..<Int(count) {
                    let token = datas[index]
                    if token == Self.wakeToken {
                        var value: UInt64 = 0
                        _ = read(wakeFD, &value, 8)
                    } else if let connection = connections[token] {
                        connection.handle(events: masks[index])
                    }
                }
            }
            wakePending.store(false, ordering: .sequentiallyConsistent)
            var commands = spare
            let stop = inbound.withLock { state -> Bool in
                swap(&commands, &state.commands)
                return state.stopRequested
            }
            for command in commands {
                switch command {
                case .run(let body): body()
                case .publish(let connection, let publish):
                    if connection.enqueueOnLoop(publish) { touched.append(connection) }
                }
            }
            commands.removeAll(keepingCapacity: true)
            spare = commands
            for connection in touched { connection.releaseOutbox() }
            touched.removeAll(keepingCapacity: true)
            let after = clock.now
            if after - lastTick >= Self.tick {
                lastTick = after
                for connection in connections.values { connection.tick(now: after) }
            }
            if stop { break }
        }
        for connection in connections.values { connection.shutdownOnLoop() }
        connections.removeAll()
        registered.store(0, ordering: .relaxed)
        let (waiters, leftover) = inbound.withLock { state in
            state.exited = true
            let waiters = state.exitWaiters
            state.exitWaiters = []
            let leftover = state.commands
            state.commands = []
            return (waiters, leftover)
        }
        for command in leftover {
            if case .publish(_, let publish) = command {
                publish.complete(.failure(MQTTError(.closed, "the MQTT event loop has shut down")))
            }
        }
        for waiter in waiters { waiter.resume() }
    }
}

/// libmosquitto's process-wide initialization, done once.
enum MQTTLibrary {
    private static let done: Bool = {
        mosquitto_lib_init()
        // OpenSSL writes to TLS sockets with write(2), which raises SIGPIPE when the broker has
        // gone; its default action would end the process. Ignore it unless the program set a handler.
        var current = sigaction()
        if sigaction(SIGPIPE, nil, &current) == 0 && current.__sigaction_handler.sa_handler == nil {
            signal(SIGPIPE, SIG_IGN)
        }
        return true
    }()

    static func initialize() { _ = done }

    /// Whether the linked libmosquitto is a 2.0.x, whose handle layout `releaseWakeupPair` knows.
    static let releasesWakeupPairs: Bool = {
        var major: Int32 = 0
        var minor: Int32 = 0
        var revision: Int32 = 0
        _ = mosquitto_lib_version(&major, &minor, &revision)
        return major == 2 && minor == 0
    }()

    /// The linked libmosquitto's version, `major.minor.revision`.
    static var version: String {
        var major: Int32 = 0
        var minor: Int32 = 0
        var revision: Int32 = 0
        _ = mosquitto_lib_version(&major, &minor, &revision)
        return "\(major).\(minor).\(revision)"
    }
}
