"""Class and column names shared by the readers, the demo-data generator and `data_prep`.

Plain tuples, no TensorFlow: `data_prep` (a CPU tool that never needs it)
imports them from here.
"""

# Pascal VOC's 20 classes in the official order (label index = position).
VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip

# The two three-way tasks of orientation_light (and of data_prep's labeller),
# as the class folder names.
ORIENTATION_CLASSES = ("left", "center", "right")
LIGHT_CLASSES = ("left_light", "center_light", "right_light")
TASK_CLASSES = {"orientation": ORIENTATION_CLASSES, "light": LIGHT_CLASSES}

# The 40 attributes of the official list_attr_celeba.txt, in its column order.
CELEBA_ATTRIBUTE_NAMES = tuple(
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young".split()
)
# The ten columns of the official list_landmarks_align_celeba.txt, in its order.
CELEBA_LANDMARKS = (
    "lefteye_x", "lefteye_y", "righteye_x", "righteye_y", "nose_x", "nose_y",
    "leftmouth_x", "leftmouth_y", "rightmouth_x", "rightmouth_y",
)  # fmt: skip

# How patch_training resizes a patch (`voc.patch_dataset`): to a square, or keeping its aspect ratio.
PATCH_SHAPES = ("square", "keep")
