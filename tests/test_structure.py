"""The package's structure: every public name users imported still imports."""
import importlib

import pytest

# The public names (no leading underscore) of each module as of the nn/ package change,
# leaving out what a module merely imports from the standard library or NumPy and aliases
# of other modules (``nn.F``): each must still be importable.
PUBLIC_NAMES = {
    "normreg": ['CheckpointError', 'Generator', '__version__', 'conventions', 'default_generator', 'empty_cache', 'functional', 'get_num_threads', 'init', 'initial_seed', 'load', 'manual_seed', 'nn', 'optim', 'random', 'save', 'seed', 'serialization', 'set_num_threads', 'testing'],
    "normreg.nn": ['BatchNorm1d', 'BatchNorm2d', 'CrossEntropyLoss', 'DEFAULT', 'Dropout', 'Flatten', 'GroupNorm', 'Identity', 'InstanceNorm1d', 'InstanceNorm2d', 'LayerNorm', 'Linear', 'Module', 'Parameter', 'RMSNorm', 'ReLU', 'Residual', 'Sequential', 'SoftmaxLoss', 'l2_penalty', 'utils'],
    "normreg.nn.utils": ['clip_grad_norm_', 'clip_grad_value_', 'freeze_batch_norm_stats', 'get_total_norm'],
    "normreg.functional": ['Generator', 'adam_step_', 'batch_norm', 'batch_norm_backward', 'cross_entropy', 'cross_entropy_backward', 'default_generator', 'dropout', 'dropout_backward', 'group_norm', 'group_norm_backward', 'layer_norm', 'layer_norm_backward', 'linear', 'linear_backward', 'relu', 'relu_backward', 'rms_norm', 'rms_norm_backward', 'sgd_step_'],
    "normreg.optim": ['Adam', 'AdamW', 'Module', 'Optimizer', 'Parameter', 'SGD', 'lr_scheduler', 'param_groups'],
    "normreg.optim.lr_scheduler": ['CosineAnnealingLR', 'LRScheduler', 'LinearLR', 'SequentialLR', 'StepLR'],
    "normreg.init": ['Parameter', 'calculate_fan_in_and_fan_out', 'calculate_gain', 'constant_', 'default_generator', 'kaiming_normal_', 'kaiming_uniform_', 'normal_', 'ones_', 'uniform_', 'xavier_normal_', 'xavier_uniform_', 'zeros_'],
    "normreg.data": ['DataLoader', 'FASHION_MNIST_CLASSES', 'FASHION_MNIST_FILES', 'FASHION_MNIST_URL', 'Generator', 'default_generator', 'download_fashion_mnist', 'fashion_mnist_dirs', 'find_fashion_mnist', 'load_fashion_mnist', 'read_idx'],
    "normreg.models": ['MLP', 'MLPResNet', 'NORMS', 'ResidualBlock', 'make_norm'],
    "normreg.random": ['Generator', 'default_generator', 'initial_seed', 'manual_seed', 'seed'],
    "normreg.testing": ['Generator', 'GradcheckError', 'GradcheckReport', 'Module', 'Parameter', 'check_gradients', 'default_generator', 'gradcheck'],
    "normreg.conventions": ['Convention', 'DEFAULT', 'PRESETS', 'check_choice', 'current', 'get', 'resolve', 'use'],
    "normreg.distributed": ['DistributedDataLoader', 'DistributedDataParallel', 'DistributedSampler', 'GradientReducer', 'LocalComm', 'SyncBatchNorm', 'abort_on_failure', 'all_reduce_mean', 'allgather', 'allreduce_sum_', 'broadcast_', 'broadcast_parameters', 'comm', 'convert_sync_batchnorm', 'get_rank', 'get_timeout', 'get_world_size', 'init', 'install_abort_handler', 'is_available', 'local_size', 'merge_moments', 'parallel', 'sampler', 'set_timeout', 'shard_bounds', 'sync_batchnorm', 'world'],
    "normreg.train": ['TrainConfig', 'build_model', 'build_optimizer', 'evaluate', 'main', 'parser', 'plot_curves', 'train', 'write_json'],
    "normreg.experiments": ['EXPERIMENTS', 'TrainConfig', 'build_model', 'evaluate', 'init_scale', 'main', 'norm_lr', 'regularization', 'run', 'run_all', 'summary', 'train', 'write_json'],
}


@pytest.mark.parametrize("module", sorted(PUBLIC_NAMES))
def test_public_names_still_import(module):
    mod = importlib.import_module(module)
    missing = [name for name in PUBLIC_NAMES[module] if not hasattr(mod, name)]
    assert not missing, f"{module} lost {missing}"



def test_nn_utils_is_a_submodule():
    import normreg.nn.utils as utils
    from normreg.nn import utils as same

    assert utils is same
    assert utils.__name__ == "normreg.nn.utils"
