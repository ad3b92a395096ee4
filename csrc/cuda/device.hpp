// Questions about the machine's CUDA devices. None of these throws, and all answer sensibly
// without a driver (the CUDA runtime is linked statically and loads the driver on first use).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace histgpu::cuda {

bool device_available();  // false without a driver, without a device, or on any CUDA error
int device_count();
std::string unavailable_reason();  // why device_available() is false (empty when it is true)

struct DeviceDescription {
  int id = 0;
  std::string name;
  int major = 0, minor = 0;
  int multiprocessors = 0;
  std::uint64_t memory = 0;
};
std::vector<DeviceDescription> describe_devices();
int runtime_version();
int driver_version();
int pointer_device(std::uintptr_t ptr);  // -1 for host or unknown memory
std::string compiled_architectures();

// Device memory holding a copy of host bytes (for histgpu selftest, which needs no framework to
// put data on a GPU). Freed with the object.
class DeviceBuffer {
 public:
  DeviceBuffer(const void* data, std::size_t bytes, int device);
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  std::uintptr_t ptr() const { return reinterpret_cast<std::uintptr_t>(ptr_); }

 private:
  void* ptr_ = nullptr;
  int device_ = 0;
};

}  // namespace histgpu::cuda
