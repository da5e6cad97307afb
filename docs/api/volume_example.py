"""A volume reconstruction from a NIfTI file (the README's example; tests/volume/test_volume_api.py runs it)."""
import padis3d

result = padis3d.reconstruct_volume(
    "scan.nii.gz",                     # NIfTI, DICOM folder, zarr or .npy: read band by band
    task="ct3d-parallel", views=90, span_deg=90,  # limited-angle parallel-beam CT, simulated from the scan
    prior="chest128_slab3",            # a shipped prior, by name
    size=32, steps=2,                  # a quick look; the defaults are 128 x 128 slices and 40 levels
    memory_budget=256 * 2**20,         # bytes: the slices stream through memory in bands
    work_dir="work",                   # resumable: the same call again continues where it stopped
)
print(result.metrics)                  # PSNR / SSIM over every plane: the FBP baseline and DDS
print(result.write("reconstruction"))  # in the scan's units, orientation and format
