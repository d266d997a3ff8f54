"""
vlm/graphs.py -- the decode step with every shape fixed, so one CUDA graph can replay it.

    out = vlm.sample(model, proc, batch, n=5, max_new_tokens=512, seed=0, graphs=True)  # CUDA only
    out = vlm.sample(model, proc, batch, max_new_tokens=64, greedy=True, static=True)   # CPU: same path, eager

NOT YET RUN ON A GPU, and so off unless asked for (graphs=True, or MMHELIX_CUDA_GRAPHS=1 for
the stages' runs). The capture code below follows torch.cuda.CUDAGraph's documented recipe
(warm-up on a side stream, static input and output buffers, one shared memory pool), but this
project's machine has no GPU: on CPU the static step runs eagerly and is tested token for token
against the eager sampler and model.generate (tests/test_sampler_static.py); the graph path itself,
its speed and its bf16 agreement are unmeasured (bench/sampler.py prints them on a GPU).

Why: at 1.5B parameters a decode step is several hundred small kernels launched from Python,
10x slower than reading the weights once (README, Benchmarks). A CUDA graph launches them all
at once, but replays exactly the kernels, shapes and addresses it recorded. So, for a fixed set
of rows, nothing in the step may change shape or address from one token to the next:
  - K/V live in the sampler's KVCache, preallocated for prompt + max_new_tokens and zero-filled;
    decoded token t writes column (prompt length + t) with index_copy_, the column a device
    tensor (`StaticDecoder.t`), and attention always runs over the whole capacity;
  - a key mask (rows, capacity) in a device buffer hides the prompt's left padding and the
    columns not written yet; the step itself sets its own column (index_fill_);
  - the rope tables of every decode position are computed once per call; the step picks
    column t with index_select, so each row keeps its own position (left padding is harmless);
  - the step's token, step index and logits are fixed buffers; the sampling (softmax, top-k/p,
    multinomial with its generator) stays outside the graph, in the sampler's loop.
Reading the whole capacity costs K/V bandwidth the eager step does not spend (it reads the
filled columns only): at most 2x the K/V on average over a row that runs to max_new_tokens, and
nothing next to the weights while rows x (prompt + new tokens) x the K/V width per token stays
small against the parameter count.

Finished rows: inside a segment of `segment` steps rows that hit EOS keep decoding, masked in
the sense that their tokens are cut at the first EOS afterwards; the sampler looks at finished
rows (stop, or drop them from the cache) only at segment ends, which also spares the GPU a host
sync at every step. Dropping changes the row count, the one shape a graph cannot change, so
`keep` forgets the graph and the next step captures one for the new count. Why per exact
count rather than a few fixed buckets: a bucket would carry finished rows to pad it, and their
K/V and MLP work is what dropping is meant to save; with drops only at segment ends and only
once a quarter of the rows has finished (drop_finished=0.25), a call captures at most a dozen
or so graphs (log 80 / log 4/3 = 15 at 80 rows), each costing the warm-up steps plus a capture,
against hundreds of replayed steps. The memory of a graph goes back to the shared pool when the
next one is captured: one graph's activations (one token per row) are held at a time, and the
K/V cache, allocated before any capture, is never part of the pool.
"""
import torch


class StaticDecoder:
    """Step 5 of vlm.sampler.sample with fixed shapes. step: the one-token step, called as
    step(text, head, cache, tok, cos, sin, key_mask, col=col) (vlm.sampler.decode_step; passed in,
    so this file imports nothing of the project). cache: a KVCache whose prefill fills
    columns [0, prompt_len); keys (R, capacity) bool: which columns a row may attend to (prompt
    padding False, decode columns False until written); cos, sin (R, 1, max_new_tokens, head_dim):
    the rope tables of every decode position. graphs: replay the step as a CUDA graph."""

    warmup = 2   # eager runs before a capture (cuBLAS picks its kernels, caches fill)

    def __init__(self, step, text, head, cache, keys, cos, sin, prompt_len, graphs=False):
        self.step, self.text, self.head, self.cache = step, text, head, cache
        self.keys, self.cos, self.sin, self.prompt_len = keys, cos, sin, prompt_len
        self.graphs = graphs
        self.t = torch.zeros(1, dtype=torch.long, device=keys.device)    # the step's index
        self.tok = torch.zeros(keys.shape[0], 1, dtype=torch.long, device=keys.device)
        self.graph = self.out = self.pool = None
        self.captures = 0

    def _step(self):
        """One token per row, written without a branch on data: the same kernels at every t."""
        col = self.t + self.prompt_len                        # this token's cache column
        self.keys.index_fill_(1, col, True)
        cos, sin = self.cos.index_select(2, self.t), self.sin.index_select(2, self.t)
        return self.step(self.text, self.head, self.cache, self.tok, cos, sin,
                         self.keys[:, None, None, :], col=col).float()

    def __call__(self, tok, t):
        """Logits (R, vocab) after decoding token t = tok (R,) of every row. With graphs the
        returned tensor is the graph's output buffer: read it before the next call."""
        self.tok.copy_(tok[:, None])
        self.t.fill_(t)
        self.cache.n = self.prompt_len + t + 1               # columns filled after this step
        if not self.graphs:
            return self._step()
        if self.graph is None:
            self._capture()
        self.graph.replay()
        return self.out

    def _capture(self):
        """Record _step for the current row count. Warm-up and capture run the CURRENT step:
        it is idempotent (it writes the same K/V into the same column and sets the same mask
        bit each time), so running it a few extra times changes nothing."""
        self.graph = self.out = None        # the previous graph's memory returns to the pool
        # streams and the capture belong to the model's device, which need not be the current one
        with torch.cuda.device(self.keys.device):
            if self.pool is None:
                self.pool = torch.cuda.graph_pool_handle()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())      # sees this step's tok and t
            with torch.cuda.stream(side):
                for _ in range(self.warmup):
                    self._step()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool):
                self.out = self._step()
        self.graph = graph
        self.captures += 1

    def keep(self, rows):
        """Keep only these rows (between segments): every buffer shrinks, so the graph goes."""
        self.graph = self.out = None
        self.cache.keep(rows)
        self.keys, self.cos, self.sin = self.keys[rows], self.cos[rows], self.sin[rows]
        self.tok = self.tok.new_zeros(len(rows), 1)
