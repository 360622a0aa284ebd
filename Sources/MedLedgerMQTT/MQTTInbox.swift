import Synchronization

/// A first-in first-out queue (a ring buffer).
struct MQTTQueue<Element> {
    private var storage: [Element?] = []
    private var head = 0
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    var first: Element? { count == 0 ? nil : storage[head] }

    mutating func append(_ element: Element) {
        if count == storage.count {
            var grown = [Element?](repeating: nil, count: max(16, storage.count * 2))
            for index in 0..<count { grown[index] = storage[(head + index) % storage.count] }
            storage = grown
            head = 0
        }
        storage[(head + count) % storage.count] = element
        count += 1
    }

    mutating func popFirst() -> Element? {
        guard count > 0 else { return nil }
        let element = storage[head]
        storage[head] = nil
        head = (head + 1) % storage.count
        count -= 1
        return element
    }

    func contains(where predicate: (Element) -> Bool) -> Bool {
        for index in 0..<count where predicate(storage[(head + index) % storage.count]!) { return true }
        return false
    }
}

/// The bounded buffer between a connection's loop thread and the consumer of `messages`.
/// When it holds `capacity` messages the loop stops reading the socket (the broker queues), and
/// resumes once the consumer has taken half. One libmosquitto read can still bring up to
/// `overflow` more (it reads as many packets per call as the handle has messages in flight, and
/// whatever a TLS record holds); those are kept. A message past `capacity + overflow` is dropped
/// and counted, which the loop's pausing makes impossible in practice. Messages on a priority topic
/// (`MQTTConfiguration.priorityTopicPrefixes`) wait in a queue of their own, taken first.
final class MQTTInbox: @unchecked Sendable {
    // @unchecked Sendable: `onSpace` is set once, right after init and before the inbox is
    // shared; everything else is a `let`, a Mutex or an atomic.

    private struct State {
        var queue = MQTTQueue<MQTTMessage>()
        var priority = MQTTQueue<MQTTMessage>()
        var count: Int { queue.count + priority.count }

        /// The next message: a priority one first.
        mutating func popFirst() -> MQTTMessage? { priority.popFirst() ?? queue.popFirst() }
        var waiter: CheckedContinuation<MQTTMessage?, Never>?
        var finished = false
        var paused = false
        var signalled = false
    }

    let capacity: Int
    private let limit: Int
    private let pauseAt: Int
    private let resumeAt: Int
    private let state = Mutex(State())
    let dropped = Atomic<Int>(0)
    let received = Atomic<Int>(0)
    /// Called (on the consumer's thread) when a paused inbox has room again.
    var onSpace: (@Sendable () -> Void)?

    private let priorityTopicPrefixes: [String]

    init(capacity: Int, overflow: Int, priorityTopicPrefixes: [String] = []) {
        self.priorityTopicPrefixes = priorityTopicPrefixes
        self.capacity = capacity
        limit = capacity + overflow
        pauseAt = capacity
        resumeAt = capacity / 2
    }

    var isPaused: Bool { state.withLock { $0.paused } }

    var count: Int { state.withLock { $0.count } }

    /// Adds a message; false when it was dropped because the buffer is full. A waiting consumer
    /// is woken by `wake()`, once per batch the loop has read, not once per message.
    func push(_ message: MQTTMessage) -> Bool {
        received.add(1, ordering: .relaxed)
        let urgent = !priorityTopicPrefixes.isEmpty && priorityTopicPrefixes.contains { message.topic.hasPrefix($0) }
        let accepted = state.withLock { state -> Bool in
            if state.finished { return true }
            guard state.count < limit else { return false }
            if urgent { state.priority.append(message) } else { state.queue.append(message) }
            if state.count >= pauseAt && !state.paused {
                state.paused = true
                state.signalled = false
            }
            return true
        }
        if !accepted { dropped.add(1, ordering: .relaxed) }
        return accepted
    }

    /// Hands the first buffered message to a consumer that waits for one.
    func wake() {
        let handoff = state.withLock { state -> (CheckedContinuation<MQTTMessage?, Never>, MQTTMessage)? in
            guard let waiter = state.waiter, let message = state.popFirst() else { return nil }
            state.waiter = nil
            return (waiter, message)
        }
        if let (waiter, message) = handoff { waiter.resume(returning: message) }
    }

    /// Unpauses when there is room; returns whether reading may go on.
    func resumeIfRoom() -> Bool {
        state.withLock { state in
            if state.paused {
                if state.count < pauseAt {
                    state.paused = false
                } else {
                    // Full again by the time the loop got here: the consumer signals once more.
                    state.signalled = false
                }
            }
            return !state.paused
        }
    }

    func next() async -> MQTTMessage? {
        let (value, wait, signal) = state.withLock { state -> (MQTTMessage?, Bool, Bool) in
            if let message = state.popFirst() {
                let signal = state.paused && !state.signalled && state.count <= resumeAt
                if signal { state.signalled = true }
                return (message, false, signal)
            }
            return (nil, !state.finished, false)
        }
        if signal { onSpace?() }
        if !wait { return value }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<MQTTMessage?, Never>) in
                let immediate = state.withLock { state -> MQTTMessage?? in
                    if let message = state.popFirst() { return .some(message) }
                    if state.finished || Task.isCancelled { return .some(nil) }
                    state.waiter = continuation
                    return .none
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<MQTTMessage?, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: nil)
        }
    }

    /// Ends the sequence once the buffered messages are taken.
    func finish() {
        let handoff = state.withLock { state -> (CheckedContinuation<MQTTMessage?, Never>, MQTTMessage?)? in
            state.finished = true
            guard let waiter = state.waiter else { return nil }
            state.waiter = nil
            return (waiter, state.popFirst())
        }
        if let (waiter, message) = handoff { waiter.resume(returning: message) }
    }
}

/// The messages a client receives, in order, as an asynchronous sequence. It ends when the
/// client is shut down. Each message goes to one iterator; use one consumer.
public struct MQTTMessageSequence: AsyncSequence, Sendable {
    /// The element type.
    public typealias Element = MQTTMessage
    let inbox: MQTTInbox

    /// The iterator.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let inbox: MQTTInbox

        /// The next message, or nil when the client was shut down (or the task cancelled).
        public mutating func next() async -> MQTTMessage? { await inbox.next() }

        /// The next message, or nil when the client was shut down (or the task cancelled).
        public mutating func next(isolation actor: isolated (any Actor)?) async -> MQTTMessage? {
            await inbox.next()
        }
    }

    /// Makes an iterator.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(inbox: inbox) }

    /// How many messages wait in the buffer now.
    public var buffered: Int { inbox.count }
}
