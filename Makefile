# Two commands set up and run everything on a fresh Debian machine (as root):
#   make quickstart   install, make the synthetic corpus, train DS-CNN, export int8, verify on TFLite Micro
#   make test         install, run the test suite
PYTHON ?= python3
APT_PACKAGES = espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sox libsndfile1 g++ valgrind cmake ninja-build
RECIPE ?= ds_cnn_gsc12
RUN_DIR ?= runs/$(RECIPE)

.PHONY: install apt pip data train export quickstart test

install: apt pip

apt:
	@if dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then echo "apt packages present"; else \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); fi

# scale: Apache Beam, for make-data --runner beam; its tests import it and fail, never skip, without it
pip:
	$(PYTHON) -m pip install -q -e '.[test,scale]'

data: install
	kws-zoo make-data

train: data
	kws-zoo train $(RECIPE) --out $(RUN_DIR)

export: train
	kws-zoo export $(RUN_DIR) --callgrind

quickstart: export

# TensorFlow's portable CPU kernels (oneDNN off, as on AMD and ARM processors) are the stricter set: the whole
# suite runs on them, then the model-building tests once more on TensorFlow's default kernels (oneDNN where
# the processor has it), so neither set can break unseen. pytest-xdist runs tests on every core; modules whose
# fixtures train stay on one worker (--dist loadgroup and their xdist_group mark).
# (The second pass leaves out the test that starts its own process with oneDNN off: it did so in the first.)
PYTEST = $(PYTHON) -m pytest -q -n auto --dist loadgroup
test: install
	TF_ENABLE_ONEDNN_OPTS=0 $(PYTEST) tests
	$(PYTEST) tests/models/test_registry.py tests/layers/test_strided_depthwise.py tests/export/test_reparam.py \
	    --deselect tests/layers/test_strided_depthwise.py::test_whole_zoo_path_runs_without_onednn
