// The emulator's self-checks (probes.cpp): "raised: <message>" or "ok: <results>".
#pragma once
#include <string>

namespace histgpu::simt::emu {

std::string run_probe(const std::string& name);

}  // namespace histgpu::simt::emu
