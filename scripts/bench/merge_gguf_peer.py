"""llama.cpp's convert_hf_to_gguf.py on a merged folder: python merge_gguf_peer.py LLAMA_CPP_DIR MERGED OUTTYPE OUTFILE.

LLAMA_CPP_DIR holds convert_hf_to_gguf.py and gguf-py (extracted from llama.cpp's repository)."""
import sys

llama_cpp, merged, outtype, outfile = sys.argv[1:5]
sys.path.insert(0, f"{llama_cpp}/gguf-py")
sys.path.insert(0, llama_cpp)
import convert_hf_to_gguf as c  # noqa: E402

sys.argv = ["convert_hf_to_gguf.py", merged, "--outtype", outtype, "--outfile", outfile]
c.main()
