"""Dev experiment (seventeenth session, docs/results.md): copy 7-Scenes frames into a semfuse
sequence marked colour-registered, the colour reprojected through each depth pixel with a
generic Kinect v1 calibration (colour focal length FRGB, cameras TX metres apart along x).
TX 0 and FRGB 585 copy the colour as recorded.

python3 tools/dev/register_7scenes_colour.py SRC DST TX FRGB START END
"""
import numpy as np, sys, os, json
from PIL import Image
src, dst, tx, frgb = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
start, end = int(sys.argv[5]), int(sys.argv[6])
os.makedirs(dst + '/rgb', exist_ok=True); os.makedirs(dst + '/depth', exist_ok=True)
fd, cxd, cyd = 585.0, 320.0, 240.0
cxr, cyr = 319.5, 239.5
frames = []; poses = []
names = sorted(f for f in os.listdir(src) if f.endswith('.depth.png'))[start:end]
u, v = np.meshgrid(np.arange(640), np.arange(480))
for i, n in enumerate(names):
    stem = n[:-len('.depth.png')]
    d = np.array(Image.open(f'{src}/{stem}.depth.png')).astype(np.float64)
    cpath = f'{src}/{stem}.color.png' if os.path.exists(f'{src}/{stem}.color.png') else f'{src}/{stem}.color.jpg'
    c = np.array(Image.open(cpath).convert('RGB')).astype(np.float64)
    z = d / 1000.0; z[d >= 65535] = 0
    X = (u - cxd) / fd * z + tx; Y = (v - cyd) / fd * z
    with np.errstate(divide='ignore', invalid='ignore'):
        ur = frgb * X / z + cxr; vr = frgb * Y / z + cyr
    ok = (z > 0) & (ur >= 0) & (ur < 639) & (vr >= 0) & (vr < 479)
    out = np.zeros_like(c)
    x0 = np.floor(ur[ok]).astype(int); y0 = np.floor(vr[ok]).astype(int); ax = ur[ok] - x0; ay = vr[ok] - y0
    for ch in range(3):
        C = c[..., ch]
        out[..., ch][ok] = (C[y0, x0] * (1 - ax) * (1 - ay) + C[y0, x0 + 1] * ax * (1 - ay) + C[y0 + 1, x0] * (1 - ax) * ay + C[y0 + 1, x0 + 1] * ax * ay)
    # pixels without depth keep the unregistered colour
    out[~ok] = c[~ok]
    Image.fromarray(out.clip(0, 255).astype(np.uint8)).save(f'{dst}/rgb/{i:06d}.png')
    Image.fromarray(d.astype(np.uint16)).save(f'{dst}/depth/{i:06d}.png')
    P = np.loadtxt(f'{src}/{stem}.pose.txt')
    from scipy.spatial.transform import Rotation as R
    U, S, Vt = np.linalg.svd(P[:3, :3]); Rm = U @ Vt
    q = R.from_matrix(Rm).as_quat()
    poses.append(f'{i/30:.6f} {P[0,3]} {P[1,3]} {P[2,3]} {q[0]} {q[1]} {q[2]} {q[3]}')
    frames.append({'timestamp': i / 30, 'rgb': f'rgb/{i:06d}.png', 'depth': f'depth/{i:06d}.png'})
open(dst + '/poses.txt', 'w').write('\n'.join(poses) + '\n')
json.dump({'format': 'semfuse-sequence', 'version': 1, 'name': os.path.basename(dst), 'intrinsics': {'fx': fd, 'fy': fd, 'cx': cxd, 'cy': cyd, 'width': 640, 'height': 480},
           'depth_scale': 1000, 'poses': 'poses.txt', 'color_registered_to_depth': True, 'depth_rendered': False, 'frames': frames}, open(dst + '/sequence.json', 'w'))
