#include "cpu/pool.hpp"

#include <pthread.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>

namespace histgpu::cpu {

namespace {

// More workers than this are never started, whatever num_threads asks for.
constexpr int kMaxWorkers = 255;

// One call's work, open to helpers until its caller has finished its own part.
struct Job {
  const std::function<void(int)>* body = nullptr;
  int wanted = 0;  // helpers it takes (participants - 1)
  int joined = 0;  // helpers that took a slot so far
  int active = 0;  // helpers inside body now
  bool closed = false;
  std::exception_ptr error;
  std::condition_variable helpers_left;
};

class Pool {
 public:
  void run(int participants, const std::function<void(int)>& body);
  static Pool*& instance();

 private:
  void start_workers(int n);  // with m_ held
  void worker_loop();

  std::mutex m_;
  std::condition_variable work_;
  std::deque<Job*> open_;  // jobs still taking helpers, oldest first
  int workers_ = 0;

  static void before_fork() { instance()->m_.lock(); }
  static void after_fork_parent() { instance()->m_.unlock(); }
  // The child has none of the parent's workers: it starts over with a fresh, empty pool (the
  // old one is left as it is; its mutex is held and nothing waits on it any more).
  static void after_fork_child() { instance() = new Pool(); }
};

Pool*& Pool::instance() {
  // Never destroyed: detached workers wait on it until the process ends.
  static Pool* pool = [] {
    pthread_atfork(&Pool::before_fork, &Pool::after_fork_parent, &Pool::after_fork_child);
    return new Pool();
  }();
  return pool;
}

void Pool::start_workers(int n) {
  while (workers_ < n && workers_ < kMaxWorkers) {
    try {
      std::thread([this] { worker_loop(); }).detach();
    } catch (const std::system_error&) {
      return;  // no more threads to be had: the callers do the work themselves
    }
    ++workers_;
  }
}

void Pool::worker_loop() {
  std::unique_lock<std::mutex> lock(m_);
  for (;;) {
    work_.wait(lock, [&] { return !open_.empty(); });
    Job* job = open_.front();
    const int slot = ++job->joined;
    if (job->joined == job->wanted) open_.pop_front();
    ++job->active;
    lock.unlock();
    std::exception_ptr error;
    try {
      (*job->body)(slot);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    if (error && !job->error) job->error = error;
    // Notified under the lock, and never touched again: the caller may return at once.
    if (--job->active == 0 && job->closed) job->helpers_left.notify_one();
  }
}

void Pool::run(int participants, const std::function<void(int)>& body) {
  Job job;
  job.body = &body;
  job.wanted = participants - 1;
  {
    std::lock_guard<std::mutex> lock(m_);
    start_workers(job.wanted);
    open_.push_back(&job);
  }
  for (int i = 0; i < job.wanted; ++i) work_.notify_one();
  std::exception_ptr error;
  try {
    body(0);
  } catch (...) {
    error = std::current_exception();
  }
  std::unique_lock<std::mutex> lock(m_);
  job.closed = true;
  for (auto it = open_.begin(); it != open_.end(); ++it) {
    if (*it == &job) {
      open_.erase(it);
      break;
    }
  }
  job.helpers_left.wait(lock, [&] { return job.active == 0; });
  if (!error) error = job.error;
  lock.unlock();
  if (error) std::rethrow_exception(error);
}

}  // namespace

void run_participants(int participants, const std::function<void(int slot)>& body) {
  if (participants <= 1) {
    body(0);
    return;
  }
  Pool::instance()->run(participants, body);
}

}  // namespace histgpu::cpu
