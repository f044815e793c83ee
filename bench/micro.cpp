// Micro-benchmarks of the pieces around the interpreter loop: assembling,
// loading (verify + decode), disassembling, and the loop itself on a short
// count. Build with -DIRIDIUM_BUILD_BENCH=ON, run build/.../bench/iridium_micro.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "asm/assembler.h"
#include "asm/disassembler.h"
#include "vm/image.h"
#include "vm/verifier.h"
#include "vm/vm.h"

namespace {

using iridium::assembler::assemble;
using iridium::vm::Image;
using iridium::vm::Vm;

// A program of about `blocks` * 17 instructions (at most 963 blocks: static
// code addresses are 16-bit) that uses every operand kind:
// registers, small and large immediates, float registers, labels, data.
std::string synthetic_source(int blocks) {
  std::string source = ".data\nmessage: .asciiz 'block done\\n'\nanswer: .integer #42\n.code\n";
  for (int i = 0; i < blocks; ++i) {
    const std::string n = std::to_string(i);
    source += "block" + n + ": load $0 #" + std::to_string(i * 7) + "   ; a comment\n";
    source += "        load $1 #100000\n";  // outside int16: LOAD + LUI
    source += "        add $0 $1 $2\n        sub $2 $0 $3\n        mul $3 $3 $4\n";
    source += "        loadf64 $5 #-3\n        addf64 $5 $5 $6\n";
    source += "        shl $4 #3\n        and $4 $2 $7\n        inc $7\n";
    source += "        lt $7 $1\n        djmpe @block" + n + "\n";
    source += "        push $7\n        pop $8\n        prts @message\n";
  }
  source += "        hlt\n";
  return source;
}

Image assemble_or_throw(const std::string& source) {
  auto assembly = assemble(source, "bench.iasm");
  if (!assembly.ok()) {
    throw std::runtime_error("benchmark program does not assemble:\n" +
                             iridium::assembler::format_all(assembly.errors));
  }
  return assembly.image;
}

void BM_Assemble(benchmark::State& state) {
  const std::string source = synthetic_source(static_cast<int>(state.range(0)));
  assemble_or_throw(source);  // the measured program must be a valid one
  for (auto _ : state) {
    auto assembly = assemble(source, "bench.iasm");
    benchmark::DoNotOptimize(assembly);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(source.size()));
  state.counters["lines"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * static_cast<double>(state.range(0)) * 16,
      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Assemble)->Arg(16)->Arg(256)->Arg(900);

// Image bytes -> parsed, verified image.
void BM_LoadImage(benchmark::State& state) {
  const auto bytes = iridium::vm::serialize_image(
      assemble_or_throw(synthetic_source(static_cast<int>(state.range(0)))));
  for (auto _ : state) {
    auto image = iridium::vm::load_image(bytes);
    benchmark::DoNotOptimize(image);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes.size()));
}
BENCHMARK(BM_LoadImage)->Arg(16)->Arg(256)->Arg(900);

void BM_Verify(benchmark::State& state) {
  const Image image = assemble_or_throw(synthetic_source(static_cast<int>(state.range(0))));
  for (auto _ : state) {
    auto status = iridium::vm::verify(image);
    benchmark::DoNotOptimize(status);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(image.code.size()));
}
BENCHMARK(BM_Verify)->Arg(16)->Arg(256)->Arg(900);

// Vm::load: verify plus pre-decode, what a shell pays per line and a
// cluster node per program.
void BM_VmLoad(benchmark::State& state) {
  const Image image = assemble_or_throw(synthetic_source(static_cast<int>(state.range(0))));
  Vm vm;
  for (auto _ : state) {
    auto status = vm.load(image);
    benchmark::DoNotOptimize(status);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(image.code.size()));
}
BENCHMARK(BM_VmLoad)->Arg(16)->Arg(256)->Arg(900);

void BM_Disassemble(benchmark::State& state) {
  const Image image = assemble_or_throw(synthetic_source(static_cast<int>(state.range(0))));
  for (auto _ : state) {
    auto text = iridium::assembler::disassemble(image);
    benchmark::DoNotOptimize(text);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(image.code.size()));
}
BENCHMARK(BM_Disassemble)->Arg(16)->Arg(256)->Arg(900);

// The interpreter loop: inc / neq / djmpe, range(0) iterations per run.
// Reported as VM instructions per second.
void BM_RunCountLoop(benchmark::State& state) {
  const int64_t iterations = state.range(0);
  const Image image = assemble_or_throw("load $0 #" + std::to_string(iterations) +
                                        "\nload $1 #0\ntop: inc $1\nneq $0 $1\ndjmpe @top\nhlt\n");
  Vm vm;
  if (!vm.load(image)) throw std::runtime_error("count loop does not load");
  for (auto _ : state) {
    vm.state().registers[1] = 0;
    auto result = vm.run_from(0);
    benchmark::DoNotOptimize(result);
  }
  state.counters["vm_insns"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * static_cast<double>(iterations) * 3,
      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_RunCountLoop)->Arg(1000)->Arg(1000000);

// The same loop under a step limit: the step-counting dispatch path.
void BM_RunCountLoopWithStepLimit(benchmark::State& state) {
  const int64_t iterations = state.range(0);
  const Image image = assemble_or_throw("load $0 #" + std::to_string(iterations) +
                                        "\nload $1 #0\ntop: inc $1\nneq $0 $1\ndjmpe @top\nhlt\n");
  iridium::vm::Limits limits;
  limits.max_steps = UINT64_MAX / 2;
  Vm vm(limits);
  if (!vm.load(image)) throw std::runtime_error("count loop does not load");
  for (auto _ : state) {
    vm.state().registers[1] = 0;
    auto result = vm.run_from(0);
    benchmark::DoNotOptimize(result);
  }
  state.counters["vm_insns"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * static_cast<double>(iterations) * 3,
      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_RunCountLoopWithStepLimit)->Arg(1000000);

}  // namespace
