# Homebrew formula for labdesk (macOS, Apple Silicon or Intel).
# It installs labdesk and its Python dependencies into a private virtual environment; llama.cpp
# is compiled from source by llama-cpp-python with Metal on Apple Silicon.
class Labdesk < Formula
  include Language::Python::Virtualenv

  desc "Teach a local model new knowledge and skills with the LAB method, offline"
  homepage "https://pypi.org/project/labdesk/"
  url "https://files.pythonhosted.org/packages/source/l/labdesk/labdesk-0.1.0.tar.gz"
  # Fill in with `shasum -a 256 dist/labdesk-0.1.0.tar.gz` when publishing a release.
  sha256 "0000000000000000000000000000000000000000000000000000000000000000"
  license "Apache-2.0"

  depends_on "cmake" => :build
  depends_on "python@3.12"

  def install
    venv = virtualenv_create(libexec, "python3.12")
    ENV["CMAKE_ARGS"] = "-DGGML_METAL=on" if Hardware::CPU.arm?
    # The dependency tree (torch, transformers, mlx-lm, ...) comes from PyPI wheels: listing
    # them all as resources would pin hundreds of files, so pip resolves them at install time.
    system venv.root/"bin/python", "-m", "pip", "install", "--no-cache-dir", buildpath
    bin.install_symlink libexec/"bin/labdesk"
  end

  test do
    assert_match "labdesk", shell_output("#{bin}/labdesk --version")
    ENV["LABDESK_HOME"] = testpath/"home"
    system bin/"labdesk", "taxonomy", "check"
  end
end
